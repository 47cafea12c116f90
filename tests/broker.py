"""A real mosquitto for the tests: a free loopback port, persistence saved on every change,
and SIGKILL/restart on the same port and database."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, workdir: Path, extra: str = "", port: int | None = None) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.dir}/\n"
            "autosave_interval 1\n"
            "autosave_on_changes true\n"
            "max_queued_messages 100000\n"
            # As root mosquitto would drop to user "mosquitto", who cannot read pytest's tmp dirs.
            + ("user root\n" if os.geteuid() == 0 else "")
            + f"{extra}\n")
        self.proc: subprocess.Popen | None = None
        self.log = self.dir / "mosquitto.log"

    def start(self) -> Broker:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-2000:]}") from None
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()


class Subscriber:
    """A QoS 1 subscriber with a persistent session: the broker keeps its messages while it is
    away (and across a broker restart, thanks to persistence)."""

    def __init__(self, port: int, topic: str = "#", client_id: str = "test-subscriber") -> None:
        import threading

        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda c, u, f, rc, p: (c.subscribe(topic, qos=1), self.connected.set())
        self.client.on_disconnect = lambda c, u, f, rc, p: self.connected.clear()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.1, 0.5)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", port, 30, clean_start=False, properties=props)
        self.client.loop_start()
        if not self.connected.wait(5):
            raise RuntimeError("subscriber did not connect")

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def json(self, suffix: str) -> list[dict]:
        import json

        with self.lock:
            return [json.loads(p) for t, p, _ in self.messages if t.endswith(suffix)]

    def numbered(self) -> list[dict]:
        """Every message the daemon numbers (``seq``, ``msg_id``) and keeps in its outbox: pages,
        events and board snapshots (a snapshot takes the seq after its page's events)."""
        return self.json("/page") + self.json("/events") + self.json("/snapshot")

    def raw(self, suffix: str) -> list[bytes]:
        with self.lock:
            return [p for t, p, _ in self.messages if t.endswith(suffix)]

    def wait_for(self, predicate, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return predicate()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Mqtt311OnlyProxy:
    """Stands in for a broker that predates MQTT 5 (mosquitto cannot be told to refuse it):
    a CONNECT at protocol level 5 gets the 3.1.1 answer "unacceptable protocol version"
    (CONNACK return code 1) and the connection is closed; any other connection is piped
    byte for byte to the real mosquitto behind."""

    def __init__(self, upstream_port: int) -> None:
        import threading

        self.upstream = upstream_port
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(8)
        self.port = self.server.getsockname()[1]
        self.refused_v5 = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading

        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        import threading

        first = client.recv(4096)
        # CONNECT: fixed header, remaining length, then "\0\4MQTT" and the protocol level byte.
        i = first.find(b"\x00\x04MQTT")
        if i > 0 and first[i + 6] == 5:
            self.refused_v5 += 1
            client.sendall(b"\x20\x02\x00\x01")
            client.close()
            return
        upstream = socket.create_connection(("127.0.0.1", self.upstream))
        upstream.sendall(first)

        def pipe(a: socket.socket, b: socket.socket) -> None:
            try:
                while data := a.recv(4096):
                    b.sendall(data)
            except OSError:
                pass
            finally:
                a.close()
                b.close()

        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
        pipe(client, upstream)

    def close(self) -> None:
        self.server.close()
