"""The classroom development set: its split by lecture, its labels, and how ``make bench-pages``
reports it beside the dev pages. The frames live in ``../shared/classroom``; without them the
tests that read them fail (CI has ../shared beside the checkout)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from edge_ocr.labels import LabelsError
from toolchain.bench import classroom
from toolchain.bench.pages import CLASSROOM, DEV, classroom_pages, report, summarise

# The measuring lectures chosen for issue 27 (toolchain/crnn/joint.py learns from none of them).
CHOSEN = ("lecture_02", "lecture_08", "lecture_10", "lecture_17", "nm_lecture_01", "nm_lecture_04")


@pytest.fixture(scope="module")
def sources() -> list[dict[str, str]]:
    path = classroom.CLASSROOM / "sources.tsv"
    if not path.is_file():
        pytest.fail(f"the classroom tests need {path} (CI has ../shared beside the checkout)")
    return list(csv.DictReader(path.open(encoding="utf-8"), delimiter="\t"))


def test_split_places_every_lecture_once_and_keeps_the_chosen_ones_for_measuring(sources: list[dict]) -> None:
    assert set(classroom.SPLIT) == {r["lecture"] for r in sources}
    assert classroom.MEASURE == CHOSEN
    assert not set(classroom.MEASURE) & set(classroom.LEARN)


def test_frames_of_measuring_and_learning_lectures_partition_the_classroom(sources: list[dict]) -> None:
    measure, learn = classroom.frames(use="measure"), classroom.frames(use="learn")
    assert sorted(measure + learn) == classroom.frames() and len(measure) + len(learn) == len(sources)
    assert {classroom.lecture_of(p.name) for p in learn} == set(classroom.LEARN)
    by_name = {r["file"]: r for r in sources}
    for lecture in classroom.SPLIT:  # sorting by name is each lecture in time order
        ours = [by_name[p.name] for p in classroom.frames() if by_name[p.name]["lecture"] == lecture]
        video = [int(r["video_frame"]) for r in ours]
        assert video == sorted(video), lecture


def test_labels_cover_each_measuring_lecture_early_middle_and_late() -> None:
    rows = classroom.labels()
    for lecture in CHOSEN:
        names = [p.name for p in classroom.frames() if classroom.lecture_of(p.name) == lecture]
        where = sorted(names.index(r["file"]) for r in rows if r["lecture"] == lecture)
        assert len(where) >= 4, lecture
        assert where[0] < len(names) / 3 and where[-1] >= 2 * len(names) / 3, (lecture, where, len(names))


def test_labels_follow_the_conventions_and_name_their_source(sources: list[dict]) -> None:
    path_of = {r["file"]: r["path"] for r in sources}
    rows = classroom.labels()
    assert len({r["file"] for r in rows}) == len(rows), "a frame labelled twice"
    for r in rows:
        assert r["category"] == "classroom_frame"
        assert r["source"] == f"bhargavaurala/accessmath-icfhr2018:{path_of[r['file']]}@b027843", r["file"]
        lines = r["text"].split("\\n")
        assert all(ln and ln == ln.strip() and not re.search(r"\s{2}", ln) for ln in lines), r["file"]


def test_a_label_outside_the_measuring_lectures_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    learning = classroom.frames(use="learn")[0].name
    labels = tmp_path / "labels.tsv"
    labels.write_text(f"file\tcategory\ttext\tsource\n{learning}\tclassroom_frame\tx=1\tsomewhere\n", encoding="utf-8")
    monkeypatch.setattr(classroom, "LABELS", labels)
    with pytest.raises(LabelsError, match="outside the measuring lectures"):
        classroom.labels()


def test_bench_pages_skips_absent_classroom_frames_with_a_note(tmp_path: Path) -> None:
    rows, note = classroom_pages(tmp_path)
    assert rows == [] and "absent" in note


def test_bench_pages_reports_each_set_and_category_as_total_errors_over_total_characters() -> None:
    """Two classroom frames of 1/10 and 9/30 errors read 10/40 = 0.250 (a mean of page CERs
    would say 0.200); with a dev whiteboard of 2/20 the whole run reads 12/60 = 0.200."""
    def page(category: str, set_: str, errors: int, chars: int) -> dict:
        return {"category": category, "set": set_, "errors": errors, "chars": chars, "cer": errors / chars,
                "f1": 1.0, "found": 1, "lines": 1, "ms": 10.0, "stages": {}}

    rows = [{"file": "pages/a.jpg", "category": "whiteboard_page", "set": DEV},
            {"file": "classroom/b.jpg", "category": "classroom_frame", "set": CLASSROOM},
            {"file": "classroom/c.jpg", "category": "classroom_frame", "set": CLASSROOM}]
    results = {"E": {"pages": {"pages/a.jpg": page("whiteboard_page", DEV, 2, 20),
                               "classroom/b.jpg": page("classroom_frame", CLASSROOM, 1, 10),
                               "classroom/c.jpg": page("classroom_frame", CLASSROOM, 9, 30)}}}
    summarise(results, rows)
    md = report(rows, results, [], Path("dev"), Path("room"), Path("out/pages"))
    assert "| E | **0.200** | 0.100 | 0.250 | 0.300 |" in md  # all, dev, classroom, worst board
    assert "| E | classroom frames | 2 | **0.250** |" in md
    assert "| whiteboard_page (1) | classroom_frame (2) |" in md and "| E | 0.100 (1.00) | 0.250 (1.00) |" in md
