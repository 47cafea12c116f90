"""MQTT over TLS with a password file, against a real mosquitto: the right credentials get the
pages through, wrong ones and a certificate from another CA give clear errors and no crash,
and the password never reaches the logs."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from edge_ocr.config import MqttConfig
from edge_ocr.daemon.mqtt import MqttPublisher
from edge_ocr.daemon.outbox import Outbox
from tests.broker import Broker, Subscriber

pytestmark = pytest.mark.skipif(not shutil.which("openssl") or not shutil.which("mosquitto_passwd"),
                                reason="needs openssl and mosquitto_passwd (make test installs them)")
PASSWORD = "correct horse battery staple"


def _ca(d: Path, name: str) -> tuple[Path, Path]:
    key, crt = d / f"{name}.key", d / f"{name}.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
                    "-keyout", key, "-out", crt], check=True, capture_output=True)
    return key, crt


def _server_cert(d: Path, ca_key: Path, ca_crt: Path) -> tuple[Path, Path]:
    key, csr, crt, ext = d / "server.key", d / "server.csr", d / "server.crt", d / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", key,
                    "-out", csr], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
                    "-days", "2", "-extfile", ext, "-out", crt], check=True, capture_output=True)
    return key, crt


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("tls")
    ca_key, ca_crt = _ca(d, "ca")
    _, other_ca = _ca(d, "other-ca")
    key, crt = _server_cert(d, ca_key, ca_crt)
    passwd = d / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", passwd, "board", PASSWORD], check=True, capture_output=True)
    passwd.chmod(0o644)
    broker = Broker(d / "broker", extra=f"cafile {ca_crt}\ncertfile {crt}\nkeyfile {key}\n"
                                        f"password_file {passwd}\n")
    broker.conf.write_text(broker.conf.read_text().replace("allow_anonymous true", "allow_anonymous false"))
    broker.start()
    yield broker, ca_crt, other_ca
    broker.stop()


def _publisher(port: int, state: Path, **kw) -> MqttPublisher:
    cfg = MqttConfig(host="localhost", port=port, tls=True, username="board", **kw)
    cfg.validate()
    return MqttPublisher(cfg, "secure", Outbox(state / "outbox.sqlite3"))


def _wait(pred, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not pred():
        time.sleep(0.05)
    return pred()


def test_tls_and_password_deliver(tls_broker, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broker, ca, _ = tls_broker
    pub = _publisher(broker.port, tmp_path, ca_file=str(ca), password=PASSWORD)
    pub.outbox.enqueue([(pub.topics.page, {"text": "over TLS"}, True)])
    caplog.set_level("DEBUG")
    pub.start()
    assert _wait(lambda: pub.acked == 1), pub.last_error
    pub.stop()
    assert pub.outbox.depth() == 0
    assert PASSWORD not in caplog.text


@pytest.mark.parametrize("case", ["wrong password", "other CA"])
def test_bad_credentials_or_certificate_are_clear_errors(tls_broker, tmp_path: Path, case: str,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    broker, ca, other = tls_broker
    kw = {"ca_file": str(ca), "password": "wrong"} if case == "wrong password" else \
        {"ca_file": str(other), "password": PASSWORD}
    pub = _publisher(broker.port, tmp_path, **kw)
    pub.outbox.enqueue([(pub.topics.page, {"text": "kept"}, True)])
    caplog.set_level("DEBUG")
    pub.start()
    time.sleep(2.5)
    attempts = caplog.text.count("mqtt_refused") + caplog.text.count("mqtt_unreachable")
    error = pub.last_error
    pub.stop()
    assert error and ("Not authorized" in error or "Bad user name or password" in error
                      if case == "wrong password" else "reach" in error), error
    assert 1 <= attempts <= 4, "retries back off instead of spinning"
    assert pub.outbox.depth() == 1, "nothing is lost while the broker refuses us"
    assert PASSWORD not in caplog.text and "wrong" not in caplog.text.replace("wrong password", "")
    _ = Subscriber  # the same helpers as the plain tests



def test_watch_connects_with_the_daemons_tls_settings(tls_broker, tmp_path: Path) -> None:
    """`edge-ocr watch` shares the daemon's client set-up: TLS with a CA file and a password."""
    import io

    from edge_ocr.tools.watch import watch

    broker, ca, other = tls_broker
    pub = _publisher(broker.port, tmp_path, ca_file=str(ca), password=PASSWORD)
    page = {"msg_id": "m1", "seq": 1, "frame": {"seq": 1}, "timings_ms": {"total": 5.0},
            "lines": [{"text": "over TLS to watch", "confidence": 0.9}]}
    pub.outbox.enqueue([(pub.topics.page, page, True)])
    pub.start()
    assert _wait(lambda: pub.acked == 1), pub.last_error
    pub.stop()
    out = io.StringIO()
    cfg = MqttConfig(host="localhost", port=broker.port, tls=True, ca_file=str(ca), username="board", password=PASSWORD)
    assert watch(cfg, "secure", seconds=2.0, out=out) == 0
    assert "0.90  over TLS to watch" in out.getvalue()
    wrong = MqttConfig(host="localhost", port=broker.port, tls=True, ca_file=str(other), username="board",
                       password=PASSWORD)
    assert watch(wrong, "secure", seconds=2.0, out=io.StringIO()) == 2, "an untrusted server is refused"
