"""The daemon's configuration: TOML, environment overrides, errors that name the key."""

from pathlib import Path

import pytest

from edge_ocr.config import ConfigError, load
from edge_ocr.config import summary as config_summary
from edge_ocr.paths import ROOT


def test_shipped_file_and_defaults_are_valid() -> None:
    cfg = load(ROOT / "config" / "edge-ocr.toml", environ={})
    assert cfg.mqtt.port == 1883 and cfg.capture.source == "auto" and cfg.device.id
    assert load(None, environ={}) == cfg


def test_file_values_and_typed_env_overrides(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('[mqtt]\nhost = "broker.lan"\nport = 8883\n[capture]\nsource = 0\n[vision]\n'
                 'fixed_region = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]\n')
    cfg = load(f, environ={"EDGE_OCR_MQTT_PORT": "1884", "EDGE_OCR_GATE_MOTION": "0.05",
                           "EDGE_OCR_MQTT_HOME_ASSISTANT": "yes", "EDGE_OCR_RUNTIME": "litert"})
    assert cfg.mqtt.host == "broker.lan" and cfg.mqtt.port == 1884
    assert cfg.gate.motion == 0.05 and cfg.mqtt.home_assistant is True
    assert cfg.capture.source == "0" and len(cfg.vision.fixed_region) == 4


@pytest.mark.parametrize(("toml", "env", "message"), [
    ("[mqtt]\nhots = 'x'\n", {}, "mqtt.hots: unknown key (did you mean 'host'?)"),
    ("[mqt]\nhost = 'x'\n", {}, "mqt: unknown section (did you mean 'mqtt'?)"),
    ("[mqtt]\nport = '1883'\n", {}, "mqtt.port: expected an integer"),
    ("[mqtt]\nport = 70000\n", {}, "mqtt.port: expected an integer from 1 to 65535"),
    ("[gate]\nmotion = 2\n", {}, "gate.motion: must be between 0 and 1"),
    ("[vision]\nfixed_region = [[1, 2]]\n", {}, "vision.fixed_region: expected 4 corners"),
    ("[recognizer]\ndecoder = 'viterbi'\n", {}, "recognizer.decoder: must be one of greedy, beam"),
    ("[mqtt]\ntls = 'yes'\n", {}, "mqtt.tls: expected true or false"),
    ("[mqtt]\nca_file = '/nonexistent/ca.pem'\n", {}, "mqtt.ca_file: no such file"),
    ("", {"EDGE_OCR_MQTT_PORT": "abc"}, "mqtt.port (from EDGE_OCR_MQTT_PORT): cannot read 'abc'"),
    ("", {"EDGE_OCR_CAPTURE_FSP": "3"}, "capture.fsp (from EDGE_OCR_CAPTURE_FSP): unknown key (did you mean 'fps'?)"),
    ("mqtt = 3\n", {}, "mqtt: expected a table"),
])
def test_errors_name_the_key(tmp_path: Path, toml: str, env: dict, message: str) -> None:
    f = tmp_path / "c.toml"
    f.write_text(toml)
    with pytest.raises(ConfigError) as exc:
        load(f, environ=env)
    assert message in str(exc.value)


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read configuration"):
        load(tmp_path / "missing.toml", environ={})
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'[device]\nid = "caf\xe9"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load(bad, environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("[mqtt\nhost = 1\n")
    with pytest.raises(ConfigError, match=r"broken\.toml"):
        load(broken, environ={})


def test_password_never_shows(tmp_path: Path) -> None:
    cfg = load(None, environ={"EDGE_OCR_MQTT_USERNAME": "board", "EDGE_OCR_MQTT_PASSWORD": "s3cret-pw"})
    assert cfg.mqtt.password == "s3cret-pw"
    assert "s3cret-pw" not in repr(cfg) and "s3cret-pw" not in str(config_summary(cfg))
