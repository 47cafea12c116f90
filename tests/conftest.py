"""Shared fixtures: the shipped model, the bundled samples, and the installed runtimes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from edge_ocr.labels import read_labels
from edge_ocr.paths import ROOT

# The default model (PP-OCRv6 small imported by toolchain.onnx_import.recognizer), the CRNN student distilled
# from it (toolchain.crnn.student) and our first CRNN: all three ship.
MODEL = ROOT / "models" / "ppocrv6_small_int8.tflite"
CRNN = ROOT / "models" / "crnn_zh_en_int8.tflite"
STUDENT = ROOT / "models" / "crnn_student_zh_en_int8.tflite"
SHIPPED = (MODEL, STUDENT, CRNN)
SAMPLES = ROOT / "samples" / "lines"
REAL_BOARD = ROOT.parent / "shared" / "devset" / "pages" / "wbpg_d07.jpg"  # JohnTigue/whiteboarder, MIT


def expected_runtimes() -> list[str]:
    """tflite-runtime has no wheel past Python 3.11; on 3.11 both must be present."""
    return ["litert", "tflite"] if sys.version_info < (3, 12) else ["litert"]


@pytest.fixture(params=expected_runtimes())
def runtime(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=SHIPPED, ids=lambda p: p.stem)
def shipped(request: pytest.FixtureRequest) -> Path:
    return request.param


@pytest.fixture(scope="session")
def samples() -> list[tuple[Path, str]]:
    return [(SAMPLES / row["file"], row["text"]) for row in read_labels(SAMPLES)]


@pytest.fixture
def broker(tmp_path: Path):
    from .broker import Broker

    b = Broker(tmp_path / "broker").start()
    yield b
    b.stop()


# Skips made visible (-ra lists them with their reasons) and, in CI, fatal: every test there has
# what it needs (make test installs packages, CI has ../shared beside the checkout), so a skip
# means a missing install step or data, never a pass. EDGE_OCR_STRICT_SKIPS=1 does the same locally.
_SKIPPED: list[str] = []


def _strict_skips() -> bool:
    return bool(os.environ.get("CI")) or os.environ.get("EDGE_OCR_STRICT_SKIPS") == "1"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _SKIPPED.append(report.nodeid)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.skipped:
        _SKIPPED.append(f"{report.nodeid} (whole module)")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _SKIPPED and _strict_skips() and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not _SKIPPED:
        return
    verdict = "FAILED: CI runs every test" if _strict_skips() else "set CI=1 to make them fail"
    terminalreporter.section(f"{len(_SKIPPED)} skipped test(s): {verdict}", red=_strict_skips())
    for nodeid in _SKIPPED:
        terminalreporter.line(f"skipped: {nodeid}")


@pytest.fixture(scope="session")
def postgres():
    """One real PostgreSQL server for the session (tests/postgres.py); skipped when the
    ``postgresql`` package is missing (make test installs it)."""
    from .postgres import Postgres, pg_bin

    if pg_bin() is None:
        pytest.skip("PostgreSQL is not installed: apt install postgresql (make test does)")
    server = Postgres().start()
    yield server
    server.close()


@pytest.fixture
def postgres_url(postgres) -> str:
    """A fresh, empty database on the session's PostgreSQL: its ``postgresql://`` URL."""
    return postgres.new_database()
