#!/usr/bin/env python3
"""Apply edge-ocr's Raspberry Pi settings idempotently, with backups; ``--dry-run`` shows a diff.

Each target is a whole file (the udev rule, the mosquitto example) or a block between marker
lines inside a file (config.txt). A target already in the wanted state is left untouched;
otherwise the old file is copied to ``<file>.edge-ocr-backup-<UTC time>`` first.
Standard library only: it runs before any virtual environment exists.
"""

from __future__ import annotations

import argparse
import difflib
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
BEGIN, END = "# >>> edge-ocr >>>", "# <<< edge-ocr <<<"


@dataclass(frozen=True)
class Target:
    path: str  # absolute, on the device
    source: str  # file name beside this script
    block: bool  # a marked block inside the file instead of the whole file


def targets(root: Path, broker: bool) -> list[Target]:
    boot = "/boot/firmware/config.txt" if (root / "boot/firmware").is_dir() else "/boot/config.txt"
    out = [Target(boot, "config.txt.fragment", True),
           Target("/etc/udev/rules.d/99-edge-ocr-dma-heap.rules", "99-edge-ocr-dma-heap.rules", False)]
    if broker:
        out.append(Target("/etc/mosquitto/conf.d/edge-ocr.conf", "mosquitto-edge-ocr.conf", False))
    return out


def wanted(current: str | None, addition: str, block: bool) -> str:
    """The file's text after applying: the whole addition, or ``current`` with the marked block
    replaced (or appended)."""
    if not block:
        return addition
    body = f"{BEGIN}\n{addition.rstrip()}\n{END}\n"
    text = current or ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        return head + body + tail
    return text + ("" if not text or text.endswith("\n") else "\n") + body


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    ap.add_argument("--root", type=Path, default=Path("/"), help="apply under this directory (tests, images)")
    ap.add_argument("--broker", action="store_true", help="also install the local mosquitto with a bridge")
    a = ap.parse_args(argv)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    changed = []
    for t in targets(a.root, a.broker):
        path = a.root / t.path.lstrip("/")
        current = path.read_text(encoding="utf-8") if path.exists() else None
        new = wanted(current, (HERE / t.source).read_text(encoding="utf-8"), t.block)
        if new == current:
            print(f"unchanged  {t.path}")
            continue
        changed.append(t.path)
        if a.dry_run:
            print(f"would change {t.path}:")
            sys.stdout.writelines(difflib.unified_diff((current or "").splitlines(True), new.splitlines(True),
                                                       f"{t.path} (now)", f"{t.path} (edge-ocr)"))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if current is not None:
            backup = path.with_name(f"{path.name}.edge-ocr-backup-{stamp}")
            shutil.copy2(path, backup)
            print(f"backup     {backup}")
        tmp = path.with_name(path.name + ".edge-ocr-tmp")
        tmp.write_text(new, encoding="utf-8")
        tmp.replace(path)  # atomic: a power cut leaves the old file or the new one
        print(f"changed    {t.path}")
    if changed and not a.dry_run and a.root == Path("/"):
        if any("udev" in p for p in changed) and shutil.which("udevadm"):
            subprocess.run(["udevadm", "control", "--reload-rules"], check=False)
            subprocess.run(["udevadm", "trigger", "--subsystem-match=dma_heap"], check=False)
        if any("config.txt" in p for p in changed):
            print("reboot for the config.txt change to take effect")
    if not changed:
        print("nothing to do")
    return 0


if __name__ == "__main__":
    sys.exit(main())
