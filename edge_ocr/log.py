"""Structured log lines on stdout: ``level=info event=page_published seq=12 lines=5``.

journald collects stdout under systemd; logfmt keeps a line readable by a person and by
``grep``/``jq``-like tools alike. Values that need it are quoted; secrets are never passed in.
"""

from __future__ import annotations

import logging
import sys
import time

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def _value(v: object) -> str:
    if isinstance(v, float):
        v = round(v, 3)
    s = str(v)
    if not s or any(c in s for c in ' ="\n\t'):
        s = '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return s


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
                  "level": record.levelname.lower(), "event": record.getMessage()}
        fields.update(getattr(record, "fields", {}))
        if record.exc_info and record.exc_info[1] is not None:
            fields["error"] = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        return " ".join(f"{k}={_value(v)}" for k, v in fields.items())


class Log:
    """A logger taking ``event`` plus key=value fields: ``log.info("page", seq=3)``."""

    def __init__(self, name: str = "edge_ocr") -> None:
        self._log = logging.getLogger(name)

    def _emit(self, level: int, event: str, exc: bool, fields: dict) -> None:
        if self._log.isEnabledFor(level):
            self._log.log(level, event, extra={"fields": fields}, exc_info=exc)

    def debug(self, event: str, **fields: object) -> None:
        self._emit(logging.DEBUG, event, False, fields)

    def info(self, event: str, **fields: object) -> None:
        self._emit(logging.INFO, event, False, fields)

    def warning(self, event: str, **fields: object) -> None:
        self._emit(logging.WARNING, event, False, fields)

    def error(self, event: str, exc: bool = False, **fields: object) -> None:
        self._emit(logging.ERROR, event, exc, fields)


def setup(level: str = "info", stream=None) -> None:
    """Route the package's logs to stdout (or ``stream``) as logfmt lines."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger("edge_ocr")
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])
    root.propagate = False
    logging.getLogger("paho").setLevel(logging.WARNING)
