"""``[http]``: which listen addresses need a token (issue 28, fault 10), the limits' checks, and the
one XNNPACK switch (fault 9) as the configuration reads it."""

from __future__ import annotations

import pytest

from edge_ocr.config import ConfigError, HttpConfig, load

LOOPBACK = ["127.0.0.1", "127.0.0.2", "127.255.255.254", "::1", "[::1]", "::ffff:127.0.0.1", "localhost",
            "LocalHost", "localhost.", "board.localhost"]
OPEN = ["0.0.0.0", "::", "192.168.1.20", "10.0.0.5", "fe80::1", "2001:db8::1", "::ffff:192.168.1.20",
        "no-such-host.invalid"]


@pytest.mark.parametrize("host", LOOPBACK)
def test_loopback_without_a_token_is_allowed(host: str) -> None:
    HttpConfig(host=host).validate()


@pytest.mark.parametrize("host", OPEN)
def test_other_addresses_without_a_token_are_refused_naming_the_fix(host: str) -> None:
    with pytest.raises(ConfigError) as err:
        HttpConfig(host=host).validate()
    message = str(err.value)
    assert message.startswith("http.host:") and "http.token" in message and "EDGE_OCR_HTTP_TOKEN" in message
    assert "http.allow_open = true" in message and "--allow-open" in message


@pytest.mark.parametrize("host", OPEN)
def test_a_token_or_the_explicit_opt_in_opens_them(host: str) -> None:
    HttpConfig(host=host, token="s3cret").validate()
    HttpConfig(host=host, allow_open=True).validate()


def test_the_configuration_file_and_environment_are_checked(tmp_path) -> None:
    path = tmp_path / "edge-ocr.toml"
    path.write_text('[http]\nhost = "0.0.0.0"\n')
    with pytest.raises(ConfigError, match=r"http\.host: '0\.0\.0\.0' is not a loopback address"):
        load(path, environ={})
    assert load(path, environ={"EDGE_OCR_HTTP_TOKEN": "s3cret"}).http.token == "s3cret"
    assert load(path, environ={"EDGE_OCR_HTTP_ALLOW_OPEN": "true"}).http.allow_open
    with pytest.raises(ConfigError, match=r"http\.host"):
        load(None, environ={"EDGE_OCR_HTTP_HOST": "::"})
    with pytest.raises(ConfigError, match=r"http\.host: must not be empty"):
        HttpConfig(host="", token="s3cret").validate()


@pytest.mark.parametrize("key, value", [("threads", 0), ("max_connections", 0), ("request_timeout_s", 0.0),
                                        ("min_bytes_per_s", 0), ("idle_timeout_s", 0), ("upload_queue", -1)])
def test_limits_must_be_sane(key: str, value: float) -> None:
    with pytest.raises(ConfigError, match=rf"http\.{key}"):
        HttpConfig(**{key: value}).validate()


@pytest.mark.parametrize("environ, expected", [({}, True), ({"EDGE_OCR_XNNPACK": "0"}, False),
                                               ({"EDGE_OCR_XNNPACK": "off"}, False),
                                               ({"EDGE_OCR_RECOGNIZER_XNNPACK": "false"}, False),
                                               ({"EDGE_OCR_XNNPACK": "0", "EDGE_OCR_RECOGNIZER_XNNPACK": "1"}, True)])
def test_edge_ocr_xnnpack_is_the_configuration_key(environ: dict, expected: bool) -> None:
    """The variable README and ``--help`` name sets ``recognizer.xnnpack`` (which every model is
    built with); the key's own variable wins over the old name."""
    assert load(None, environ=environ).recognizer.xnnpack is expected


def test_a_bad_xnnpack_value_is_named() -> None:
    with pytest.raises(ConfigError, match=r"recognizer\.xnnpack \(from EDGE_OCR_XNNPACK\)"):
        load(None, environ={"EDGE_OCR_XNNPACK": "maybe"})
