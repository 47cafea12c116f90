"""Deployment: the systemd unit verifies and stays hardened, a staged `make install` holds what
the unit runs (and it runs), and the firmware script is idempotent with backups."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge_ocr.paths import ROOT

UNIT = ROOT / "systemd" / "edge-ocr.service"
UNITS = ("edge-ocr.service", "edge-ocr-archive.service")
APPLY = ROOT / "firmware_config" / "apply.py"
needs_systemd = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("stage")
    subprocess.run(["make", "-s", "install", f"DESTDIR={dest}", f"PYTHON={sys.executable}"], cwd=ROOT, check=True,
                   capture_output=True, text=True)
    return dest


def _unit_for(staged: Path, tmp_path: Path, name: str = "edge-ocr.service") -> Path:
    """The installed unit with its paths moved into the staged tree (so ExecStart exists here)."""
    text = (staged / "etc/systemd/system" / name).read_text()
    unit = tmp_path / name
    unit.write_text(text.replace("/opt/edge-ocr", f"{staged}/opt/edge-ocr"))
    return unit


def test_staged_install_holds_what_the_unit_references(staged: Path) -> None:
    unit = (staged / "etc/systemd/system/edge-ocr.service").read_text()
    exec_start = re.search(r"^ExecStart=(\S+)", unit, re.M).group(1)
    assert exec_start == "/opt/edge-ocr/venv/bin/edge-ocr"
    assert os.access(staged / exec_start.lstrip("/"), os.X_OK)
    assert (staged / re.search(r"^WorkingDirectory=(\S+)", unit, re.M).group(1).lstrip("/")).is_dir()
    assert "/etc/edge-ocr/edge-ocr.toml" in unit and (staged / "etc/edge-ocr/edge-ocr.toml").is_file()
    assert (staged / "etc/edge-ocr/edge-ocr.env").stat().st_mode & 0o777 == 0o600
    for f in ("models/ppocrv6_small_int8.tflite", "models/ppocrv6_small_int8.json", "models/ppocrv6_small.charset.txt",
              "models/crnn_zh_en_int8.tflite", "models/crnn_zh_en_int8.json", "models/charset_zh_en.txt",
              "models/crnn_student_zh_en_int8.tflite", "models/crnn_student_zh_en_int8.json",
              "edge_ocr/http/web/index.html", "edge_ocr/http/openapi.json", "samples/board.mp4",
              "edge_ocr/archive/web/index.html", "edge_ocr/archive/openapi.json"):
        assert (staged / "opt/edge-ocr" / f).is_file(), f
    cfg = (staged / "opt/edge-ocr/venv/pyvenv.cfg").read_text()
    assert "include-system-site-packages = true" in cfg, "the Pi's python3-picamera2 must be importable"


def test_staged_venv_recognises_the_samples(staged: Path) -> None:
    venv_python = staged / "opt/edge-ocr/venv/bin/python"
    env = {**os.environ, "PYTHONPATH": str(staged / "opt/edge-ocr")}
    out = subprocess.run([venv_python, "-m", "edge_ocr", "recognize", "--json", *sorted(
        str(p) for p in (ROOT / "samples/lines").glob("*.png"))], env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["runtime"] == "litert", "the device's interpreter: ai-edge-litert"
    ours = subprocess.run([sys.executable, "-m", "edge_ocr", "recognize", "--json", "--runtime", "litert",
                           *sorted(str(p) for p in (ROOT / "samples/lines").glob("*.png"))],
                          capture_output=True, text=True, check=True, cwd=ROOT)
    assert [r["text"] for r in json.loads(out.stdout)["lines"]] == [r["text"] for r in json.loads(ours.stdout)["lines"]]


def test_install_keeps_an_existing_configuration(staged: Path) -> None:
    cfg = staged / "etc/edge-ocr/edge-ocr.toml"
    cfg.write_text("[device]\nid = 'room-101'\n")
    subprocess.run(["make", "-s", "install", f"DESTDIR={staged}", f"PYTHON={sys.executable}"], cwd=ROOT, check=True,
                   capture_output=True)
    assert cfg.read_text() == "[device]\nid = 'room-101'\n"


def test_staged_install_holds_the_archive_unit(staged: Path) -> None:
    """The archive's unit runs ``edge-ocr archive`` on the shared configuration, with its own state
    directory and secrets file, and opens no device (no camera on an archive server)."""
    unit = (staged / "etc/systemd/system/edge-ocr-archive.service").read_text()
    exec_start = re.search(r"^ExecStart=(.+)$", unit, re.M).group(1).split()
    assert exec_start == ["/opt/edge-ocr/venv/bin/edge-ocr", "archive", "--config", "/etc/edge-ocr/edge-ocr.toml"]
    assert os.access(staged / exec_start[0].lstrip("/"), os.X_OK)
    assert re.search(r"^StateDirectory=edge-ocr-archive$", unit, re.M) and "DeviceAllow" not in unit
    assert re.search(r"^PrivateDevices=yes$", unit, re.M) and re.search(r"^DynamicUser=yes$", unit, re.M)
    assert (staged / "etc/edge-ocr/edge-ocr-archive.env").stat().st_mode & 0o777 == 0o600
    assert (staged / "opt/edge-ocr/docs/archive.md").is_file(), "the unit's Documentation="
    venv_python = staged / "opt/edge-ocr/venv/bin/python"
    out = subprocess.run([venv_python, "-m", "edge_ocr", "archive", "--help"], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(staged / "opt/edge-ocr")})
    assert "--config" in out.stdout


@needs_systemd
@pytest.mark.parametrize("name", UNITS)
def test_unit_verifies_clean(staged: Path, tmp_path: Path, name: str) -> None:
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", _unit_for(staged, tmp_path, name)],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r.stdout + r.stderr


@needs_systemd
@pytest.mark.parametrize(("name", "most"), [("edge-ocr.service", 2.0), ("edge-ocr-archive.service", 1.5)])
def test_unit_exposure_is_at_most(staged: Path, tmp_path: Path, name: str, most: float) -> None:
    """The daemon needs the camera's devices; the archive needs none and is held tighter."""
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", "--threshold=20",
                        _unit_for(staged, tmp_path, name)], capture_output=True, text=True)
    level = float(re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout).group(1))
    print(f"systemd-analyze security {name}: exposure {level}")
    assert r.returncode == 0 and level <= most, r.stdout[-2000:]


def test_uninstall_removes_the_code_but_keeps_the_configuration(tmp_path: Path) -> None:
    (tmp_path / "opt/edge-ocr/venv/bin").mkdir(parents=True)
    (tmp_path / "etc/systemd/system").mkdir(parents=True)
    (tmp_path / "etc/systemd/system/edge-ocr.service").write_text("[Service]\n")
    (tmp_path / "etc/systemd/system/edge-ocr-archive.service").write_text("[Service]\n")
    (tmp_path / "etc/edge-ocr").mkdir(parents=True)
    (tmp_path / "etc/edge-ocr/edge-ocr.toml").write_text("")
    subprocess.run(["make", "-s", "uninstall", f"DESTDIR={tmp_path}"], cwd=ROOT, check=True, capture_output=True)
    assert not (tmp_path / "opt/edge-ocr").exists() and not (tmp_path / "etc/systemd/system/edge-ocr.service").exists()
    assert not (tmp_path / "etc/systemd/system/edge-ocr-archive.service").exists()
    assert (tmp_path / "etc/edge-ocr/edge-ocr.toml").exists()


def _fake_pi(root: Path) -> Path:
    boot = root / "boot/firmware"
    boot.mkdir(parents=True)
    (boot / "config.txt").write_text("# stock\ndtparam=audio=on\n[all]\n")
    return boot / "config.txt"


def _apply(root: Path, *args: str) -> str:
    return subprocess.run([sys.executable, APPLY, "--root", str(root), *args], check=True, capture_output=True,
                          text=True).stdout


def test_firmware_dry_run_changes_nothing(tmp_path: Path) -> None:
    config = _fake_pi(tmp_path)
    out = _apply(tmp_path, "--dry-run", "--broker")
    assert "+camera_auto_detect=1" in out and "would change /etc/udev/rules.d/99-edge-ocr-dma-heap.rules" in out
    assert config.read_text() == "# stock\ndtparam=audio=on\n[all]\n" and not (tmp_path / "etc").exists()


def test_firmware_apply_is_idempotent_and_keeps_backups(tmp_path: Path) -> None:
    config = _fake_pi(tmp_path)
    first = _apply(tmp_path, "--broker")
    assert first.count("changed ") == 3 and "backup" in first
    text = config.read_text()
    assert text.startswith("# stock\ndtparam=audio=on\n[all]\n") and text.count("camera_auto_detect=1") == 1
    backups = list(config.parent.glob("config.txt.edge-ocr-backup-*"))
    assert len(backups) == 1 and backups[0].read_text() == "# stock\ndtparam=audio=on\n[all]\n"
    snapshot = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    second = _apply(tmp_path, "--broker")
    assert "nothing to do" in second and second.count("unchanged") == 3
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == snapshot
    rules = tmp_path / "etc/udev/rules.d/99-edge-ocr-dma-heap.rules"
    assert 'SUBSYSTEM=="dma_heap", GROUP="video"' in rules.read_text()
    # An edited block is put back (and the edited file backed up), the rest of the file kept.
    config.write_text(text.replace("cma-320", "cma-64") + "dtoverlay=extra\n")
    third = _apply(tmp_path)
    assert "changed    /boot/firmware/config.txt" in third
    assert "cma-320" in config.read_text() and config.read_text().endswith("dtoverlay=extra\n")
