"""The classroom development set: hand labels of keyframes from ``../shared/classroom`` (a fixed
1080p camera at a real whiteboard, 13 lectures) and the one record of which lectures measure and
which may be learnt from.

``split.json``: lecture -> ``measure`` | ``learn``. Split by lecture, never by frame: a lecture's
later keyframes repeat most of its earlier writing, so nothing learns from a measuring lecture and
labels exist only for measuring lectures. ``labels.tsv``: ``file`` (a name under
``<classroom>/frames/``), ``category`` (``classroom_frame``), ``text`` (a frame's lines joined by a
literal ``\\n``), ``source`` (``repository:path@commit``). The images stay in ``../shared``;
conventions, doubts and the GPL-3.0 notice are in ``README.md`` beside this file.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from edge_ocr.labels import LabelsError
from edge_ocr.paths import ROOT

HERE = Path(__file__).resolve().parent
CLASSROOM = ROOT.parent / "shared" / "classroom"
LABELS = HERE / "labels.tsv"
USES = ("measure", "learn")


def _split() -> dict[str, str]:
    lectures = json.loads((HERE / "split.json").read_text(encoding="utf-8"))["lectures"]
    bad = {k: v for k, v in lectures.items() if v not in USES}
    if bad:
        raise ValueError(f"{HERE / 'split.json'}: each lecture is 'measure' or 'learn', not {bad}")
    return lectures


SPLIT: dict[str, str] = _split()
MEASURE: tuple[str, ...] = tuple(sorted(k for k, v in SPLIT.items() if v == "measure"))
LEARN: tuple[str, ...] = tuple(sorted(k for k, v in SPLIT.items() if v == "learn"))


def lecture_of(name: str) -> str:
    """``nm_lecture_04_012280.jpg`` -> ``nm_lecture_04`` (frames are ``<lecture>_<video frame>.jpg``)."""
    return Path(name).stem.rsplit("_", 1)[0]


def frames(root: Path = CLASSROOM, use: str | None = None) -> list[Path]:
    """The frames under ``root/frames`` of the lectures for ``use`` (``measure``, ``learn``, or None
    for all), sorted by name: each lecture in time order, as the camera saw it.

    Raises FileNotFoundError without the folder, and ValueError for a lecture the split does not
    place (a new lecture is placed in ``split.json`` before anything reads it)."""
    if use is not None and use not in USES:
        raise ValueError(f"use is one of {USES} or None, not {use!r}")
    folder = Path(root) / "frames"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no classroom frames (../shared/classroom beside the checkout)")
    paths = sorted(folder.glob("*.jpg"))
    unplaced = sorted({lecture_of(p.name) for p in paths} - set(SPLIT))
    if unplaced:
        raise ValueError(f"{folder}: lecture(s) {unplaced} not in {HERE / 'split.json'}; place each first")
    return [p for p in paths if use is None or SPLIT[lecture_of(p.name)] == use]


def labels(root: Path = CLASSROOM) -> list[dict[str, str]]:
    """The labelled frames in ``labels.tsv`` order, each row with ``path`` (the image under
    ``root/frames``) and ``lecture`` added.

    Raises :class:`LabelsError` when a labelled image is not under ``root`` or a label belongs to a
    lecture that is not for measuring (a labelled learning frame would leak into a measurement)."""
    folder = Path(root) / "frames"
    with LABELS.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    for row in rows:
        row["lecture"], row["path"] = lecture_of(row["file"]), str(folder / row["file"])
    leaked = [r["file"] for r in rows if SPLIT.get(r["lecture"]) != "measure"]
    if leaked:
        raise LabelsError(f"{LABELS}: {len(leaked)} label(s) outside the measuring lectures {MEASURE}: {leaked[:3]}")
    absent = [r["file"] for r in rows if not Path(r["path"]).is_file()]
    if absent:
        raise LabelsError(f"{LABELS}: {len(absent)} labelled frame(s) not in {folder}, first {absent[0]!r}")
    return rows
