"""Every configuration rule, each refused by name: one bad value per rule, written as a user
would write it (TOML or an ``EDGE_OCR_…`` variable), and a check that no rule in
``edge_ocr/config.py`` is left without a case here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edge_ocr.config import ConfigError, load
from edge_ocr.paths import ROOT

# (TOML text, environment, the key the error must name, a fragment of the message)
CASES = [
    ("[device]\nid = 'room/12'\n", {}, "device.id", "must not contain"),
    ("[device]\nid = 'room+'\n", {}, "device.id", "must not contain"),
    ("[device]\nid = 'room#'\n", {}, "device.id", "must not contain"),
    ("[device]\nid = \"room\\u0000\"\n", {}, "device.id", "control characters"),
    ("[device]\nid = '$SYS'\n", {}, "device.id", "must not start with '$'"),
    ("[capture]\nsource = ''\n", {}, "capture.source", "must not be empty"),
    ("[capture]\nwidth = 0\n", {}, "capture.width", "must be positive"),
    ("[capture]\nheight = -1\n", {}, "capture.height", "must be positive"),
    ("[capture]\nfps = 0\n", {}, "capture.fps", "must be positive"),
    ("[capture]\nretry_max_s = 0\n", {}, "capture.retry_max_s", "must be positive"),
    ("[capture]\nread_timeout_s = -2\n", {}, "capture.read_timeout_s", "must be positive"),
    ("[vision]\nfixed_region = [[0, 0], [1, 0], [1, 1], ['a', 1]]\n", {}, "vision.fixed_region", "4 corners"),
    ("[vision]\nbinarizer = 'otsu2'\n", {}, "vision.binarizer", "must be one of"),
    ("[vision]\ndetector = 'east'\n", {}, "vision.detector", "must be one of"),
    ("[vision]\ndetector_side = 64\n", {}, "vision.detector_side", "≥ 128"),
    ("[vision]\nbox_thresh = 1.0\n", {}, "vision.box_thresh", "from 0 to below 1"),
    ("[vision]\nmin_confidence = -0.1\n", {}, "vision.min_confidence", "from 0 to below 1"),
    ("[vision]\nunclip_ratio = -1\n", {}, "vision.unclip_ratio", "≥ 0"),
    ("[vision]\nanalysis_side = 100\n", {}, "vision.analysis_side", "at least 256"),
    ("[vision]\nsmall_text = 30\ntext_height = 24\n", {}, "vision.small_text", "below vision.text_height"),
    ("[vision]\nsmall_text = -1\n", {}, "vision.small_text", "0 (one pass)"),
    ("[vision]\nmax_tiles = 0\n", {}, "vision.max_tiles", "at least 1"),
    ("[vision]\nmin_text = -4\n", {}, "vision.min_text", "≥ 0"),
    ("[vision]\ntext_activity = 1.0\n", {}, "vision.text_activity", "above 0 and below 1"),
    ("[vision]\ntext_activity = 0\n", {}, "vision.text_activity", "above 0 and below 1"),
    ("[recognizer]\nthreads = 0\n", {}, "recognizer.threads", "must be positive"),
    ("[recognizer]\nruntime = 'onnx'\n", {}, "recognizer.runtime", "must be one of"),
    ("[recognizer]\ndecoder = 'viterbi'\n", {}, "recognizer.decoder", "must be one of"),
    ("[recognizer]\nbeam_width = 0\n", {}, "recognizer.beam_width", "must be positive"),
    ("[recognizer]\ncache_size = 0\n", {}, "recognizer.cache_size", "must be positive"),
    ("[gate]\npixel_delta = 0\n", {}, "gate.pixel_delta", "must be positive"),
    ("[gate]\nmotion = 1.5\n", {}, "gate.motion", "between 0 and 1"),
    ("[gate]\nchange = 0\n", {}, "gate.change", "between 0 and 1"),
    ("[gate]\nstable_frames = 0\n", {}, "gate.stable_frames", "must be positive"),
    ("[gate]\nabsorb_frames = -3\n", {}, "gate.absorb_frames", "must be positive"),
    ("[mqtt]\nport = 0\n", {}, "mqtt.port", "from 1 to 65535"),
    ("[mqtt]\nprotocol = '4'\n", {}, "mqtt.protocol", "must be one of"),
    ("[mqtt]\nkeepalive = 2\n", {}, "mqtt.keepalive", "at least 5 seconds"),
    ("[mqtt]\ncert_file = '/nonexistent/c.pem'\n", {}, "mqtt.cert_file", "no such file"),
    ("[mqtt]\nkey_file = '/nonexistent/k.pem'\n", {}, "mqtt.key_file", "no such file"),
    ("[mqtt]\nca_file = '/nonexistent/ca.pem'\n", {}, "mqtt.ca_file", "no such file"),
    ("[mqtt]\npassword = 'x'\n", {}, "mqtt.password", "set mqtt.username too"),
    ("[mqtt]\nbase_topic = ''\n", {}, "mqtt.base_topic", "non-empty"),
    ("[mqtt]\nbase_topic = 'school/#'\n", {}, "mqtt.base_topic", "without '+', '#'"),
    ("[mqtt]\nbase_topic = 'school/+/ocr'\n", {}, "mqtt.base_topic", "without '+', '#'"),
    ("[mqtt]\nbase_topic = '/edge-ocr'\n", {}, "mqtt.base_topic", "empty topic level"),
    ("[mqtt]\nbase_topic = 'school//ocr'\n", {}, "mqtt.base_topic", "empty topic level"),
    ("[mqtt]\nbase_topic = 'edge-ocr/'\n", {}, "mqtt.base_topic", "empty topic level"),
    ("[mqtt]\nbase_topic = '$SYS/edge'\n", {}, "mqtt.base_topic", "must not start with '$'"),
    ("[mqtt]\ndiscovery_prefix = 'home#'\n", {}, "mqtt.discovery_prefix", "without '+', '#'"),
    ("[mqtt]\nmax_message_bytes = 512\n", {}, "mqtt.max_message_bytes", "at least 1024"),
    ("", {"EDGE_OCR_MQTT_MAX_MESSAGE_BYTES": "-1"}, "mqtt.max_message_bytes", "0 (the broker's announced limit only)"),
    ("[outbox]\nmax_messages = 0\n", {}, "outbox.max_messages", "must be positive"),
    ("[snapshot]\nmax_bytes = 1000\n", {}, "snapshot.max_bytes", "at least 4096"),
    ("[mqtt]\nmax_message_bytes = 65536\n[snapshot]\nmax_bytes = 98304\n", {}, "snapshot.max_bytes",
     "at most mqtt.max_message_bytes (65536)"),
    ("", {"EDGE_OCR_SNAPSHOT_MAX_SIDE": "200"}, "snapshot.max_side", "at least 320"),
    ("[snapshot]\nquality = 0\n", {}, "snapshot.quality", "from 1 to 100"),
    ("[http]\nport = 70000\n", {}, "http.port", "from 1 to 65535"),
    ("[http]\nmax_body_mb = 0\n", {}, "http.max_body_mb", "must be positive"),
    ("[http]\nthreads = 0\n", {}, "http.threads", "must be positive"),
    ("[http]\nmax_connections = 0\n", {}, "http.max_connections", "must be positive"),
    ("[http]\nrequest_timeout_s = 0\n", {}, "http.request_timeout_s", "must be positive"),
    ("[http]\nmin_bytes_per_s = -5\n", {}, "http.min_bytes_per_s", "must be positive"),
    ("[http]\nidle_timeout_s = 0\n", {}, "http.idle_timeout_s", "must be positive"),
    ("[http]\nupload_queue = -1\n", {}, "http.upload_queue", "≥ 0"),
    ("[http]\nhost = ' '\n", {}, "http.host", "must not be empty"),
    ("[http]\nhost = '0.0.0.0'\n", {}, "http.host", "set a token"),
    ("", {"EDGE_OCR_HTTP_HOST": "::"}, "http.host", "http.allow_open = true"),
    ("[service]\nlog_level = 'trace'\n", {}, "service.log_level", "must be one of"),
    ("[service]\ndrain_timeout_s = -1\n", {}, "service.drain_timeout_s", "≥ 0"),
    ("[capture]\nfolder_settle_s = -1\n", {}, "capture.folder_settle_s", "≥ 0"),
    ("[capture]\nfolder_settle_s = 5\nfolder_give_up_s = 2\n", {}, "capture.folder_give_up_s", "must be above"),
    ("[mqtt]\nmax_message_bytes = 100\n", {}, "mqtt.max_message_bytes", "at least"),
    ("[image]\nmax_megapixels = 0\n", {}, "image.max_megapixels", "must be positive"),
    ("[image]\nmax_pages = 0\n", {}, "image.max_pages", "must be positive"),
    ("[image]\ndecode_memory_mb = 8\n", {}, "image.decode_memory_mb", "at least 16"),
    # Not a number: nan and inf pass every comparison (nan <= 0 is False), so they are refused as such.
    ("[gate]\nmotion = nan\n", {}, "gate.motion", "finite number"),
    ("[capture]\nfps = inf\n", {}, "capture.fps", "finite number"),
    ("", {"EDGE_OCR_GATE_CHANGE": "nan"}, "gate.change", "cannot read 'nan'"),
    ("", {"EDGE_OCR_HTTP_MAX_BODY_MB": "inf"}, "http.max_body_mb", "cannot read 'inf'"),
    ("", {"EDGE_OCR_DEVICE_ID": "a/b"}, "device.id", "must not contain"),
    ("", {"EDGE_OCR_MQTT_BASE_TOPIC": "x/#"}, "mqtt.base_topic", "without '+', '#'"),
    ("[archive]\nclient_id = 'arch/1'\n", {}, "archive.client_id", "must not contain"),
    ("[archive]\nbase_topic = 'school/+'\n", {}, "archive.base_topic", "without '+', '#'"),
    ("[archive]\nshare_group = 'a/b'\n", {}, "archive.share_group", "one topic level"),
    ("[archive]\nmax_message_bytes = 1000\n", {}, "archive.max_message_bytes", "at least 131072"),
    ("[archive]\nsession_expiry_s = 0\n", {}, "archive.session_expiry_s", "persistent session"),
    ("[archive]\nkeep_days = -1\n", {}, "archive.keep_days", "≥ 0"),
    ("[archive]\nprune_every_min = 0\n", {}, "archive.prune_every_min", "must be positive"),
    ("[archive]\ninactivity_min = 0\n", {}, "archive.inactivity_min", "must be positive"),
    ("[archive]\nwiped_min = -1\n", {}, "archive.wiped_min", "must be positive"),
    ("[archive]\ntimezone = 'Europe/Atlantis'\n", {}, "archive.timezone", "IANA"),
    ("[[archive.timetable]]\nname = 'Maths'\nstart = '8h'\nend = '09:00'\n", {}, "archive.timetable[0].start",
     "HH:MM"),
    ("[[archive.timetable]]\nname = 'Maths'\nstart = '09:00'\nend = '08:00'\n", {}, "archive.timetable[0].end",
     "after start"),
    ("[[archive.timetable]]\nname = ''\nstart = '08:00'\nend = '09:00'\n", {}, "archive.timetable[0].name",
     "non-empty"),
    ("[[archive.timetable]]\nname = 'M'\nweekdays = [7]\nstart = '08:00'\nend = '09:00'\n", {},
     "archive.timetable[0].weekdays", "0 (Monday)"),
    ("[[archive.timetable]]\nname = 'M'\ndevices = ['']\nstart = '08:00'\nend = '09:00'\n", {},
     "archive.timetable[0].devices", "device ids"),
    ("[[archive.timetable]]\nname = 'M'\nroom = 'B12'\nstart = '08:00'\nend = '09:00'\n", {},
     "archive.timetable[0].room", "unknown key"),
    ("", {"EDGE_OCR_ARCHIVE_TIMETABLE": '["Maths"]'}, "archive.timetable[0]", "expected a table"),
    ("[archive]\nhttp_port = 0\n", {}, "archive.http_port", "from 1 to 65535"),
    ("[archive]\nhttp_host = ''\n", {}, "archive.http_host", "must not be empty"),
    ("[archive]\nhttp_host = '0.0.0.0'\n", {}, "archive.http_host", "archive.token"),
    ("", {"EDGE_OCR_ARCHIVE_HTTP_HOST": "::"}, "archive.http_host", "archive.allow_open = true"),
]


@pytest.mark.parametrize(("toml", "env", "key", "message"), CASES, ids=[f"{c[2]}-{i}" for i, c in enumerate(CASES)])
def test_each_rule_refuses_by_name(tmp_path: Path, toml: str, env: dict, key: str, message: str) -> None:
    f = tmp_path / "c.toml"
    f.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load(f, environ=env)
    text = str(exc.value)
    assert text.startswith(key) and message in text, text


@pytest.mark.parametrize("topic", ["edge-ocr", "school-7/edge-ocr", "campus/north/room12"])
def test_topic_prefixes_with_levels_are_accepted(topic: str) -> None:
    assert load(None, environ={"EDGE_OCR_MQTT_BASE_TOPIC": topic}).mqtt.base_topic == topic


def test_archive_http_is_private_unless_a_token_or_allow_open() -> None:
    """The device's rule for the archive's server: loopback without a token, anything else with one."""
    assert load(None, environ={"EDGE_OCR_ARCHIVE_HTTP_HOST": "0.0.0.0", "EDGE_OCR_ARCHIVE_TOKEN": "s3cret"})
    assert load(None, environ={"EDGE_OCR_ARCHIVE_HTTP_HOST": "0.0.0.0", "EDGE_OCR_ARCHIVE_ALLOW_OPEN": "1"})
    assert load(None, environ={}).archive.http_host == "127.0.0.1"


def test_no_rule_is_left_untested() -> None:
    """Every key that ``edge_ocr/config.py`` validates (an error message or helper call naming
    ``section.key``) has a case above."""
    source = (ROOT / "edge_ocr" / "config.py").read_text(encoding="utf-8")
    ruled = set(re.findall(r"""(?:ConfigError\(f?|_[a-z]\w*\()["'](\w+\.\w+)\b""", source))
    tested = {c[2] for c in CASES}
    assert ruled - tested == set(), f"rules without a test case: {sorted(ruled - tested)}"
