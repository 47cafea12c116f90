"""The one reader of a labelled image folder: ``labels.tsv`` with a header naming at least the
``file`` (relative to the folder) and ``text`` columns; other columns (``category``, ``source``)
are kept. The dev set and a user's fine-tuning folder share this format; a text may hold a
literal ``\\n`` between a page's lines."""

from __future__ import annotations

import csv
from pathlib import Path


class LabelsError(ValueError):
    """The folder has no usable ``labels.tsv`` (the message names the file and what is wrong)."""


def read_labels(folder: Path, prefix: str = "") -> list[dict[str, str]]:
    """Rows of ``folder/labels.tsv`` whose ``file`` starts with ``prefix``, in file order.

    Raises :class:`LabelsError` when the file is missing, lacks the ``file`` or ``text``
    column, or names an image that is not there."""
    path = Path(folder) / "labels.tsv"
    if not path.is_file():
        raise LabelsError(f"{path}: no such file (a folder of line images needs labels.tsv: file<TAB>text)")
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = {"file", "text"} - set(reader.fieldnames or [])
        if missing:
            raise LabelsError(f"{path}: header lacks the column(s) {sorted(missing)}; found {reader.fieldnames}")
        rows = [r for r in reader if r["file"] and r["file"].startswith(prefix)]
    absent = [r["file"] for r in rows if not (Path(folder) / r["file"]).is_file()]
    if absent:
        raise LabelsError(f"{path}: {len(absent)} listed image(s) missing, first {absent[0]!r}")
    return rows
