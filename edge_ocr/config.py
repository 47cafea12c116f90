"""The daemon's configuration: one typed structure, loaded from TOML, overridden by the environment.

Every section is a dataclass; every key has a default, so an empty file is a valid
configuration. ``EDGE_OCR_<SECTION>_<KEY>`` overrides a key (``EDGE_OCR_MQTT_PASSWORD``
keeps a secret out of the file). Errors name the key: ``mqtt.port: expected an integer
from 1 to 65535, got 'abc'``.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import math
import os
import socket
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from edge_ocr import options

ENV_PREFIX = "EDGE_OCR_"
ENV_ALIASES = {"EDGE_OCR_XNNPACK": "EDGE_OCR_RECOGNIZER_XNNPACK"}  # old name → the key's variable


class ConfigError(ValueError):
    """A configuration problem, naming the key (``section.key``) it is about."""


@dataclass
class DeviceConfig:
    id: str = ""  # topic segment edge-ocr/<id>/…; empty: the host name

    def validate(self) -> None:
        if not self.id:
            self.id = socket.gethostname().split(".")[0] or "edge-ocr"
        if any(c in self.id for c in "/+#") or not self.id.isprintable():
            raise ConfigError(f"device.id: must not contain '/', '+', '#' or control characters, got {self.id!r}")
        if self.id.startswith("$"):
            raise ConfigError(f"device.id: must not start with '$' (reserved by brokers), got {self.id!r}")


@dataclass
class CaptureConfig:
    source: str = "auto"  # auto | picamera2 | V4L2 index or /dev/video* | stream URL | video file | image folder
    width: int = 1920
    height: int = 1080
    fps: float = 2.0  # frames examined per second; the gate decides which are recognised
    loop: bool = False  # replay a video file forever (demos, soak tests)
    retry_max_s: float = 2.0  # backoff cap while the camera is gone
    read_timeout_s: float = 5.0
    # An image folder: a file is read once unchanged (size, mtime, inode) this long and whole
    folder_settle_s: float = 0.5
    # An image folder: a file still incomplete or undecodable, unchanged this long, is reported once
    folder_give_up_s: float = 10.0

    def validate(self) -> None:
        _positive("capture.width", self.width)
        _positive("capture.height", self.height)
        _positive("capture.fps", self.fps)
        _positive("capture.retry_max_s", self.retry_max_s)
        _positive("capture.read_timeout_s", self.read_timeout_s)
        if self.folder_settle_s < 0:
            raise ConfigError(f"capture.folder_settle_s: must be ≥ 0, got {self.folder_settle_s}")
        if self.folder_give_up_s <= self.folder_settle_s:
            raise ConfigError(f"capture.folder_give_up_s: must be above capture.folder_settle_s "
                              f"({self.folder_settle_s}), got {self.folder_give_up_s}")
        if not self.source:
            raise ConfigError("capture.source: must not be empty (use 'auto')")


@dataclass
class VisionConfig:
    fixed_region: list = field(default_factory=list)  # 4 corners [[x, y], …], fractions or pixels; empty: detect
    detector: str = "db"  # db: the learned text detector below | classical: binarise and smear (no model)
    detector_model: str = "models/db_lite_int8.tflite"  # or models/ppocrv4_det_int8.tflite: its teacher, ~1.5× the time
    detector_side: int = 0  # long side, pixels, the surface is scaled to for detection; 0: the model's default
    box_thresh: float = 0.0  # DB: mean text probability a box needs; 0: the model's default
    unclip_ratio: float = 0.0  # DB: how far boxes grow back around the text; 0: the model's default
    # Scale-aware detection (docs/vision.md): coarse boxes shorter than small_text detector px are
    # detected again at the scale that makes them text_height px tall, in at most max_tiles tiles
    # per 1920×1080 of image; text_activity: coarse probability marking text not yet boxed.
    text_height: float = 24.0  # detector px; > small_text
    small_text: float = 0.0  # detector px at the coarse scale; 0: one coarse pass only (12: chosen by CV)
    max_tiles: int = 9  # ≥ 1
    text_activity: float = 0.1  # 0 < x < 1
    min_text: float = 16.0  # image px: shortest text box looked for everywhere; 0: only where the coarse pass hints
    min_confidence: float = 0.0  # lines read with a lower confidence are dropped as clutter
    # Text sharpness (0 smeared … about 0.7 sharp; edge_ocr/vision/sharpness.py) below which a frame is
    # blurred: the daemon keeps its last page, the API caps confidences at 0.5; 0: never
    min_sharpness: float = 0.5
    enhance_contrast: bool = True  # local contrast (CLAHE) before detection: faint marker, chalk
    binarizer: str = "sauvola"  # classical only
    analysis_side: int = 1024  # classical only

    def validate(self) -> None:
        if self.fixed_region:
            try:
                ok = len(self.fixed_region) == 4 and all(
                    len(p) == 2 and all(isinstance(v, int | float) for v in p) for p in self.fixed_region)
            except TypeError:
                ok = False
            if not ok:
                raise ConfigError(f"vision.fixed_region: expected 4 corners [[x, y], …], got {self.fixed_region!r}")
        _choice("vision.binarizer", self.binarizer, options.BINARIZERS)
        _choice("vision.detector", self.detector, options.DETECTORS)
        if self.detector_side and self.detector_side < 128:
            raise ConfigError(f"vision.detector_side: 0 (the model's default) or ≥ 128, got {self.detector_side}")
        for key in ("box_thresh", "min_confidence", "min_sharpness"):
            if not 0 <= getattr(self, key) < 1:
                raise ConfigError(f"vision.{key}: must be from 0 to below 1, got {getattr(self, key)}")
        if self.unclip_ratio < 0:
            raise ConfigError(f"vision.unclip_ratio: must be ≥ 0, got {self.unclip_ratio}")
        if self.small_text < 0 or (self.small_text and self.text_height <= self.small_text):
            raise ConfigError(f"vision.small_text: 0 (one pass) or from 0 to below vision.text_height "
                              f"({self.text_height}), got {self.small_text}")
        if self.max_tiles < 1:
            raise ConfigError(f"vision.max_tiles: must be at least 1, got {self.max_tiles}")
        if self.min_text < 0:
            raise ConfigError(f"vision.min_text: must be ≥ 0 (image px; 0: off), got {self.min_text}")
        if not 0 < self.text_activity < 1:
            raise ConfigError(f"vision.text_activity: must be above 0 and below 1, got {self.text_activity}")
        if self.analysis_side < 256:
            raise ConfigError(f"vision.analysis_side: must be at least 256, got {self.analysis_side}")


@dataclass
class RecognizerConfig:
    model: str = "models/ppocrv6_small_int8.tflite"
    threads: int = 1
    runtime: str = "auto"  # auto | litert | tflite
    decoder: str = "greedy"
    beam_width: int = 8
    lm: str = ""
    lm_weight: float = 0.1
    xnnpack: bool = True  # XNNPACK kernels (threads, runtime and this apply to every model, the detector too)
    cache_size: int = 512

    def validate(self) -> None:
        _positive("recognizer.threads", self.threads)
        _choice("recognizer.runtime", self.runtime, options.RUNTIMES)
        _choice("recognizer.decoder", self.decoder, options.DECODERS)
        _positive("recognizer.beam_width", self.beam_width)
        _positive("recognizer.cache_size", self.cache_size)


@dataclass
class GateConfig:
    pixel_delta: int = 24  # gray levels by which a pixel must differ to count as changed
    motion: float = 0.01  # changed share of a cell between consecutive frames that means it moves
    stable_frames: int = 2  # motionless frames in a row before a cell counts as clean
    change: float = 0.0003  # changed share of the board since the last read: about one new character
    absorb_frames: int = 40  # still frames after which a thick grey blob (not skin, not clothes) is board
    # Detect again only in bands across the cells changed since the last read (edge_ocr/page/incremental.py);
    # off: every read detects the whole board (bands lose a line's first letters behind a moving teacher)
    partial_reads: bool = False

    def validate(self) -> None:
        _positive("gate.pixel_delta", self.pixel_delta)
        _fraction("gate.motion", self.motion)
        _fraction("gate.change", self.change)
        _positive("gate.stable_frames", self.stable_frames)
        _positive("gate.absorb_frames", self.absorb_frames)


MIN_MESSAGE_BYTES = 1024  # below this not even a one-line page fits


@dataclass
class MqttConfig:
    enabled: bool = True
    host: str = "localhost"
    port: int = 1883
    username: str = ""
    password: str = field(default="", repr=False)
    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    base_topic: str = "edge-ocr"
    keepalive: int = 30
    protocol: str = "auto"  # auto (MQTT 5, falling back to 3.1.1) | 5 | 3.1.1
    home_assistant: bool = False
    discovery_prefix: str = "homeassistant"
    # Largest PUBLISH packet sent, in bytes (payload + topic + about 5): a page over it is trimmed,
    # anything else replaced by a "too large" notice. 0: only the limit an MQTT 5 broker announces.
    max_message_bytes: int = 131_072
    retain: bool = True  # false for brokers without retained messages (the Will too)

    def validate(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"mqtt.port: expected an integer from 1 to 65535, got {self.port}")
        if self.max_message_bytes and self.max_message_bytes < MIN_MESSAGE_BYTES:
            raise ConfigError(f"mqtt.max_message_bytes: 0 (the broker's announced limit only) or at least "
                              f"{MIN_MESSAGE_BYTES}, got {self.max_message_bytes}")
        _choice("mqtt.protocol", self.protocol, options.MQTT_PROTOCOLS)
        if self.keepalive < 5:
            raise ConfigError(f"mqtt.keepalive: must be at least 5 seconds, got {self.keepalive}")
        for key in ("ca_file", "cert_file", "key_file"):
            path = getattr(self, key)
            if path and not Path(path).is_file():
                raise ConfigError(f"mqtt.{key}: no such file: {path}")
        if self.cert_file and not self.tls:
            raise ConfigError("mqtt.cert_file: a client certificate needs mqtt.tls = true")
        if self.password and not self.username:
            raise ConfigError("mqtt.password: set mqtt.username too")
        _topic_levels("mqtt.base_topic", self.base_topic)
        _topic_levels("mqtt.discovery_prefix", self.discovery_prefix)


@dataclass
class OutboxConfig:
    path: str = ""  # default: <service.state_dir>/outbox.sqlite3
    max_messages: int = 10_000  # when full, the oldest messages are dropped (and counted)

    def validate(self) -> None:
        _positive("outbox.max_messages", self.max_messages)


SNAPSHOT_MIN_BYTES = 4096  # the sample board at 320 px, quality 30 needs about 3 KB
SNAPSHOT_BYTES = 98_304  # 96 KiB: a 1280-px board at quality 80 fits, with room to spare


@dataclass
class SnapshotConfig:
    """The board picture published with each page (docs/daemon.md, "Board snapshots")."""

    enabled: bool = True
    # Largest snapshot message (the PUBLISH packet, JPEG in base64), at most mqtt.max_message_bytes when
    # that is set; 0: 96 KiB, or mqtt.max_message_bytes when smaller
    max_bytes: int = 0
    max_side: int = 1280  # long side of the picture, px; a picture too large is sent at a lower quality first
    quality: int = 80  # JPEG quality tried first (1-100); lowered down to 30, then the picture made smaller

    def validate(self) -> None:
        if self.max_bytes and self.max_bytes < SNAPSHOT_MIN_BYTES:
            raise ConfigError(f"snapshot.max_bytes: 0 (automatic) or at least {SNAPSHOT_MIN_BYTES}, "
                              f"got {self.max_bytes}")
        if self.max_side < 320:
            raise ConfigError(f"snapshot.max_side: must be at least 320 (px), got {self.max_side}")
        if not 1 <= self.quality <= 100:
            raise ConfigError(f"snapshot.quality: a JPEG quality from 1 to 100, got {self.quality}")


@dataclass
class HttpConfig:
    enabled: bool = False  # the daemon serves the REST API and web page (``edge-ocr serve`` always does)
    host: str = "127.0.0.1"  # loopback only; any other address needs a token (or allow_open)
    port: int = 8080
    token: str = field(default="", repr=False)  # bearer token required on /api, /health, /metrics when set
    allow_open: bool = False  # serve a non-loopback host without a token: an API open to the network, on purpose
    max_body_mb: float = 10.0
    threads: int = 4  # worker threads for uploads (POST); one more thread serves every other request
    upload_queue: int = 16  # uploads waiting for a worker; more are answered 503 with Retry-After
    max_connections: int = 256  # open connections; more are answered 503 and closed
    request_timeout_s: float = 20.0  # a request must arrive within this (headers and body) …
    min_bytes_per_s: int = 1000  # … plus 1 s per this many bytes received; slower ones get 408
    idle_timeout_s: int = 30  # an idle keep-alive connection is closed after this

    def validate(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"http.port: expected an integer from 1 to 65535, got {self.port}")
        _positive("http.max_body_mb", self.max_body_mb)
        for key in ("threads", "max_connections", "request_timeout_s", "min_bytes_per_s", "idle_timeout_s"):
            _positive(f"http.{key}", getattr(self, key))
        if self.upload_queue < 0:
            raise ConfigError(f"http.upload_queue: must be ≥ 0, got {self.upload_queue}")
        if not self.host.strip():
            raise ConfigError("http.host: must not be empty (127.0.0.1: this machine only; 0.0.0.0: every address)")
        private_bind("http.host", "http.token", "http.allow_open", self.host, self.token, self.allow_open,
                     "http.token, EDGE_OCR_HTTP_TOKEN or serve --token", ", serve --allow-open")


def private_bind(host_key: str, token_key: str, open_key: str, host: str, token: str, allow_open: bool,
                 token_hint: str, open_hint: str = "") -> None:
    """An HTTP server is private by default: a listen address other than loopback needs a token,
    or ``allow_open`` saying that an API open to the network is wanted (the device's ``[http]``
    and the archive's server follow the same rule)."""
    if not token and not allow_open and not is_loopback(host):
        raise ConfigError(
            f"{host_key}: {host!r} is not a loopback address and {token_key} is empty, so anyone on the "
            f"network could use the API: set a token ({token_hint}), "
            f"or say that an open API is wanted ({open_key} = true{open_hint}), "
            "or listen on 127.0.0.1")


def is_loopback(host: str) -> bool:
    """Whether a listen address reaches this machine only: 127.0.0.0/8, ::1 (also IPv4-mapped and in
    brackets), ``localhost`` (RFC 6761), or a host name every address of which is loopback. The
    wildcard ("", "0.0.0.0", "::") and a name that does not resolve are not."""
    name = host.strip().removeprefix("[").removesuffix("]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return _loopback_address(name)  # a literal address: no lookup
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(name, None)} if name else set()
    except (OSError, UnicodeError):
        return False
    return bool(addresses) and all(_loopback_address(a) for a in addresses)


def _loopback_address(text: str) -> bool:
    address = ipaddress.ip_address(text.split("%")[0])
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


@dataclass
class ImageConfig:
    """What one input image may take (API uploads, ``recognize``, the folder source), checked
    from its header before any pixel is decoded; see docs/api.md."""

    max_megapixels: float = 50.0  # all pages of one input together; a 12 MP photo is 12
    max_pages: int = 50  # pages of a multi-page TIFF
    decode_memory_mb: float = 512.0  # memory decoded images hold at once, all threads together; more waits

    def validate(self) -> None:
        _positive("image.max_megapixels", self.max_megapixels)
        _positive("image.max_pages", self.max_pages)
        if self.decode_memory_mb < 16:
            raise ConfigError(f"image.decode_memory_mb: must be at least 16, got {self.decode_memory_mb}")


@dataclass
class ServiceConfig:
    state_dir: str = ""  # default: $STATE_DIRECTORY (systemd), else ./state
    log_level: str = "info"
    drain_timeout_s: float = 10.0  # on shutdown, how long to wait for the broker to take the outbox
    stdout_pages: bool = False  # also print every page as a JSON line

    def validate(self) -> None:
        if not self.state_dir:
            self.state_dir = os.environ.get("STATE_DIRECTORY", "").split(":")[0] or "state"
        _choice("service.log_level", self.log_level, ("debug", "info", "warning", "error"))
        if self.drain_timeout_s < 0:
            raise ConfigError(f"service.drain_timeout_s: must be ≥ 0, got {self.drain_timeout_s}")


ARCHIVE_MIN_MESSAGE_BYTES = 131_072  # mqtt.max_message_bytes' default: what a device sends at most

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PERIOD_KEYS = {"name", "weekdays", "start", "end", "devices"}


@dataclass
class ArchiveConfig:
    """``edge-ocr archive``: the subscriber that keeps every board version (docs/archive.md). It
    connects to the broker of ``[mqtt]``."""

    database: str = ""  # SQLite file, or postgresql://user@host/db; default: <service.state_dir>/archive.sqlite3
    base_topic: str = ""  # subscribes to <base>/+/page|events|health|status|snapshot; default: mqtt.base_topic
    client_id: str = ""  # the persistent session's name: keep it stable; default: edge-ocr-archive-<host>
    session_expiry_s: int = 604_800  # how long the broker queues messages for an archive that is away
    share_group: str = ""  # several archives sharing the load: $share/<group>/…; empty: a plain subscription
    # Larger messages are refused (acknowledged, counted, logged): a device sends at most mqtt.max_message_bytes
    max_message_bytes: int = 1_048_576
    keep_days: float = 0.0  # lessons that ended longer ago are removed; 0: keep forever
    prune_every_min: float = 60.0  # how often old lessons are removed (when keep_days > 0)
    inactivity_min: float = 30.0  # a lesson ends after this long without a version (outside the timetable)
    wiped_min: float = 2.0  # … or when the board stays wiped clean this long
    timezone: str = ""  # IANA name of the timetable's local time (Europe/Paris); empty: the machine's
    timetable: list = field(default_factory=list)  # [[archive.timetable]] periods: name, weekdays, start, end, devices
    http_host: str = "127.0.0.1"  # the archive's web page and JSON API; not loopback: needs a token (or allow_open)
    http_port: int = 8090
    token: str = field(default="", repr=False)  # bearer token required on every request when set
    allow_open: bool = False  # serve a non-loopback host without a token, on purpose

    def validate(self) -> None:
        if not self.client_id:
            self.client_id = "edge-ocr-archive-" + (socket.gethostname().split(".")[0] or "host")
        if any(c in self.client_id for c in "/+#") or not self.client_id.isprintable():
            raise ConfigError(f"archive.client_id: must not contain '/', '+', '#' or control characters, "
                              f"got {self.client_id!r}")
        if self.base_topic:
            _topic_levels("archive.base_topic", self.base_topic)
        if self.max_message_bytes < ARCHIVE_MIN_MESSAGE_BYTES:
            raise ConfigError(f"archive.max_message_bytes: at least {ARCHIVE_MIN_MESSAGE_BYTES} (a device's "
                              f"default largest message), got {self.max_message_bytes}")
        if self.share_group and (any(c in self.share_group for c in "/+#$") or not self.share_group.isprintable()):
            raise ConfigError(f"archive.share_group: one topic level without '/', '+', '#', '$', got "
                              f"{self.share_group!r}")
        if not 60 <= self.session_expiry_s <= 0xFFFFFFFF:
            raise ConfigError(f"archive.session_expiry_s: from 60 s (a persistent session) to 4294967295 "
                              f"(never expires), got {self.session_expiry_s}")
        if self.keep_days < 0:
            raise ConfigError(f"archive.keep_days: must be ≥ 0 (0: keep forever), got {self.keep_days}")
        for key in ("prune_every_min", "inactivity_min", "wiped_min"):
            _positive(f"archive.{key}", getattr(self, key))
        if self.timezone:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ConfigError(f"archive.timezone: not an IANA time zone name (like Europe/Paris), "
                                  f"got {self.timezone!r}") from None
        for i, period in enumerate(self.timetable):
            _period(f"archive.timetable[{i}]", period)
        if not 1 <= self.http_port <= 65535:
            raise ConfigError(f"archive.http_port: expected an integer from 1 to 65535, got {self.http_port}")
        if not self.http_host.strip():
            raise ConfigError("archive.http_host: must not be empty (127.0.0.1: this machine only)")
        private_bind("archive.http_host", "archive.token", "archive.allow_open", self.http_host,
                     self.token, self.allow_open, "archive.token or EDGE_OCR_ARCHIVE_TOKEN")

    def http(self) -> HttpConfig:
        """The web server's settings: the device's ``[http]`` limits with this address and token."""
        return HttpConfig(enabled=True, host=self.http_host, port=self.http_port, token=self.token,
                          allow_open=self.allow_open)

    def periods(self) -> list[dict[str, Any]]:
        """The timetable with weekdays as numbers (0 = Monday) and devices as a list."""
        return [{"name": p["name"], "weekdays": [_weekday(d) for d in p.get("weekdays", range(7))],
                 "start": p["start"], "end": p["end"], "devices": list(p.get("devices", []))}
                for p in self.timetable]


def _weekday(day: Any) -> int:
    return WEEKDAYS.index(day.lower()[:3]) if isinstance(day, str) else int(day)


def _period(key: str, period: Any) -> None:
    """One ``[[archive.timetable]]`` entry: name, start and end ("HH:MM", start before end),
    optional weekdays (0–6 or mon…sun; default every day) and devices (default every device)."""
    if not isinstance(period, dict):
        raise ConfigError(f"{key}: expected a table with name, weekdays, start, end, devices, got {period!r}")
    unknown = set(period) - PERIOD_KEYS
    if unknown:
        raise ConfigError(f"{key}.{sorted(unknown)[0]}: unknown key (name, weekdays, start, end, devices)")
    if not isinstance(period.get("name"), str) or not period["name"].strip():
        raise ConfigError(f"{key}.name: a non-empty string is required")
    times = []
    for part in ("start", "end"):
        text = period.get(part)
        hours, _, minutes = str(text).partition(":")
        if not (isinstance(text, str) and hours.isdigit() and minutes.isdigit() and len(minutes) == 2
                and int(hours) < 24 and int(minutes) < 60):
            raise ConfigError(f"{key}.{part}: expected \"HH:MM\" (24-hour local time), got {text!r}")
        times.append(int(hours) * 60 + int(minutes))
    if times[0] >= times[1]:
        raise ConfigError(f"{key}.end: must be after start ({period['start']}), got {period['end']!r}")
    days = period.get("weekdays", list(range(7)))
    if not isinstance(days, list) or not days or not all(
            (isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 6)
            or (isinstance(d, str) and d.lower()[:3] in WEEKDAYS and len(d) >= 3) for d in days):
        raise ConfigError(f"{key}.weekdays: a non-empty list of 0 (Monday) … 6 or mon … sun, got {days!r}")
    devices = period.get("devices", [])
    if not isinstance(devices, list) or not all(isinstance(d, str) and d for d in devices):
        raise ConfigError(f"{key}.devices: a list of device ids (empty: every device), got {devices!r}")


@dataclass
class Config:
    device: DeviceConfig = field(default_factory=DeviceConfig)
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    vision: VisionConfig = field(default_factory=VisionConfig)
    recognizer: RecognizerConfig = field(default_factory=RecognizerConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    snapshot: SnapshotConfig = field(default_factory=SnapshotConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    image: ImageConfig = field(default_factory=ImageConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)
    archive: ArchiveConfig = field(default_factory=ArchiveConfig)

    @property
    def outbox_path(self) -> Path:
        return Path(self.outbox.path) if self.outbox.path else Path(self.service.state_dir) / "outbox.sqlite3"

    @property
    def snapshot_bytes(self) -> int:
        """The largest snapshot message: ``snapshot.max_bytes``, else 96 KiB or
        ``mqtt.max_message_bytes`` when that is smaller."""
        return self.snapshot.max_bytes or min(n for n in (SNAPSHOT_BYTES, self.mqtt.max_message_bytes) if n)

    @property
    def archive_database(self) -> str:
        """``archive.database``, else the SQLite file in the state directory."""
        return self.archive.database or str(Path(self.service.state_dir) / "archive.sqlite3")

    @property
    def archive_topic(self) -> str:
        """The topic prefix the archive subscribes under: ``archive.base_topic``, else ``mqtt.base_topic``."""
        return self.archive.base_topic or self.mqtt.base_topic

    def validate(self) -> Config:
        for f in dataclasses.fields(self):
            getattr(self, f.name).validate()
        if 0 < self.mqtt.max_message_bytes < self.snapshot.max_bytes:
            raise ConfigError(f"snapshot.max_bytes: must be at most mqtt.max_message_bytes "
                              f"({self.mqtt.max_message_bytes}), got {self.snapshot.max_bytes}")
        return self


def load(path: str | Path | None = None, environ: dict[str, str] | None = None) -> Config:
    """The configuration from ``path`` (optional) with environment overrides, validated."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            raw = p.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read configuration {p}: {exc.strerror or exc}") from None
        try:
            data = tomllib.loads(raw.decode("utf-8-sig"))  # a byte-order mark (Notepad) is not TOML
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{p}: not UTF-8 text (byte {exc.start})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: {exc}") from None
    _apply_env(data, os.environ if environ is None else environ)
    return from_dict(data).validate()


def from_dict(data: dict[str, Any]) -> Config:
    sections = {f.name: f for f in dataclasses.fields(Config)}
    kwargs = {}
    for name, table in data.items():
        if name not in sections:
            raise ConfigError(f"{name}: unknown section{_suggest(name, sections)}")
        if not isinstance(table, dict):
            raise ConfigError(f"{name}: expected a table ([{name}]), got {type(table).__name__}")
        kwargs[name] = _section(get_type_hints(Config)[name], name, table)
    return Config(**kwargs)


def _section(cls: type, name: str, table: dict[str, Any]) -> Any:
    hints = get_type_hints(cls)
    values = {}
    for key, value in table.items():
        if key not in hints:
            raise ConfigError(f"{name}.{key}: unknown key{_suggest(key, hints)}")
        values[key] = _typed(f"{name}.{key}", hints[key], value)
    return cls(**values)


def _typed(key: str, kind: type, value: Any) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise ConfigError(f"{key}: expected a finite number, got {value!r}")
    if kind is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):  # source = 0 (a V4L2 index)
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    if kind is list:
        if isinstance(value, list):
            return value
        raise ConfigError(f"{key}: expected a list, got {value!r}")
    raise ConfigError(f"{key}: unsupported type {kind}")


def _apply_env(data: dict[str, Any], environ: Any) -> None:
    """``EDGE_OCR_<SECTION>_<KEY>=value`` into ``data``. Variables whose first word is not a
    section (``EDGE_OCR_RUNTIME``, read by the interpreter) are left alone. ``EDGE_OCR_XNNPACK``
    (also read by the interpreter for a model built without a configuration) sets
    ``recognizer.xnnpack``, so that it reaches every model the configuration builds."""
    sections = {f.name: get_type_hints(get_type_hints(Config)[f.name]) for f in dataclasses.fields(Config)}
    for var, text in environ.items():
        target = ENV_ALIASES.get(var, var)
        if not var.startswith(ENV_PREFIX) or (target != var and target in environ):  # the key's own name wins
            continue
        section, _, key = target[len(ENV_PREFIX):].lower().partition("_")
        if section not in sections or not key:
            continue
        name = f"{section}.{key}"
        if key not in sections[section]:
            raise ConfigError(f"{name} (from {var}): unknown key{_suggest(key, sections[section])}")
        data.setdefault(section, {})[key] = _from_text(name, var, sections[section][key], text)


def _from_text(name: str, var: str, kind: type, text: str) -> Any:
    try:
        if kind is bool:
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind is int:
            return int(text)
        if kind is float:
            number = float(text)
            if not math.isfinite(number):  # nan and inf pass every comparison-based rule
                raise ValueError
            return number
        if kind is list:
            return json.loads(text)
        return text
    except ValueError:
        raise ConfigError(f"{name} (from {var}): cannot read {text!r} as {kind.__name__}") from None


def _suggest(word: str, options: Any) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _topic_levels(key: str, topic: str) -> None:
    """A topic prefix the daemon publishes under: levels joined by '/', none empty, no wildcard
    ('+', '#': a subscriber pattern, refused by brokers in a publish), no '$' first (``$SYS``,
    ``$share``), no control or NUL characters (MQTT forbids them in topic names)."""
    if not topic or any(c in topic for c in "+#") or not topic.isprintable():
        raise ConfigError(f"{key}: must be non-empty without '+', '#' or control characters, got {topic!r}")
    if "" in topic.split("/"):
        raise ConfigError(f"{key}: an empty topic level (leading, trailing or double '/'), got {topic!r}")
    if topic.startswith("$"):
        raise ConfigError(f"{key}: must not start with '$' (reserved by brokers: $SYS, $share), got {topic!r}")


def _positive(key: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{key}: must be positive, got {value}")


def _fraction(key: str, value: float) -> None:
    if not 0 < value < 1:
        raise ConfigError(f"{key}: must be between 0 and 1, got {value}")


def _choice(key: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ConfigError(f"{key}: must be one of {', '.join(options)}; got {value!r}")


def summary(cfg: Config) -> dict:
    """The configuration as a dict with secrets masked (for ``edge-ocr config``)."""
    doc = dataclasses.asdict(cfg)
    for section, key in (("mqtt", "password"), ("http", "token"), ("archive", "token")):
        if doc[section][key]:
            doc[section][key] = "***"
    return doc
