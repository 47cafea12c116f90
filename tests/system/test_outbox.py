"""The durable outbox: numbering, persistence, bounds, damage, and a SIGKILL mid-write."""

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge_ocr.daemon.outbox import Outbox, OutboxError
from edge_ocr.paths import ROOT


def test_messages_are_numbered_and_survive_a_reopen(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    docs = box.enqueue([("a/page", {"text": "x"}, True), ("a/events", {"event": "added"}, False)])
    assert [d["seq"] for d in docs] == [1, 2] and len({d["msg_id"] for d in docs}) == 2
    box.close()
    box = Outbox(tmp_path / "o.sqlite3")
    pending = box.pending(10)
    assert [(m.topic, m.retain) for m in pending] == [("a/page", True), ("a/events", False)]
    assert json.loads(pending[0].payload)["text"] == "x"
    box.ack([pending[0].id])
    assert box.depth() == 1 and box.pending(10, exclude={pending[1].id}) == []
    assert box.enqueue([("a/page", {}, True)])[0]["seq"] == 3, "numbering continues after a restart"
    assert box.stamp({"k": 1})["seq"] == 1, "state messages are numbered apart"
    assert box.enqueue([("a/page", {}, True)])[0]["seq"] == 4, "page/event numbers stay gap-free"


def test_full_outbox_drops_the_oldest_and_counts(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", max_messages=5)
    for i in range(8):
        box.enqueue([("t", {"i": i}, False)])
    assert box.depth() == 5 and box.dropped == 3
    assert [json.loads(m.payload)["i"] for m in box.pending(10)] == [3, 4, 5, 6, 7]


def test_damaged_file_is_kept_aside_and_a_fresh_outbox_starts(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    box = Outbox(path)
    assert box.recovered_from is not None and box.recovered_from.exists()
    assert box.depth() == 0 and box.enqueue([("t", {}, False)])[0]["seq"] == 1


def test_unusable_state_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state directory should be")  # fails for root too
    with pytest.raises(OutboxError, match=r"outbox .*state"):
        Outbox(blocker / "o.sqlite3")


WRITER = """
import sys
from edge_ocr.daemon.outbox import Outbox
box = Outbox(sys.argv[1])
i = 0
while True:
    box.enqueue([("t/page", {"i": i, "pad": "x" * 2000}, True), ("t/events", {"i": i}, False)])
    print(i, flush=True)
    i += 1
"""


@pytest.mark.parametrize("run", range(3))
def test_sigkill_mid_write_loses_no_committed_message(tmp_path: Path, run: int) -> None:
    path = tmp_path / "o.sqlite3"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    acknowledged = -1
    deadline = time.monotonic() + 0.4 + 0.3 * run
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line:
            acknowledged = int(line)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert acknowledged > 5
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    box = Outbox(path)
    ids = [json.loads(m.payload)["i"] for m in box.pending(100_000) if m.topic == "t/events"]
    assert ids[: acknowledged + 1] == list(range(acknowledged + 1)), "every write that returned is there"
    seqs = [json.loads(m.payload)["seq"] for m in box.pending(100_000)]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
