"""The daemon's health in one owner: counters, faults, the recognition-latency histogram, the
uptime, and what the delivery side reports (outbox depth, broker state). The MQTT ``health``
message, ``GET /health`` and ``GET /metrics`` all read this one object, so they cannot disagree.
The document's shape is ``schemas/health.schema.json``."""

from __future__ import annotations

import time
from typing import Protocol

from edge_ocr.http.prometheus import Histogram, Metric

# counter → (Prometheus name, help)
COUNTERS = {
    "frames_seen": ("frames_seen_total", "frames taken from the camera"),
    "frames_recognised": ("frames_recognised_total", "frames that went through vision and recognition"),
    "lines_recognised": ("lines_recognised_total", "line crops run through the model"),
    "lines_cached": ("cache_hits_total", "line crops answered by the line cache"),
    "pages_published": ("pages_published_total", "pages handed to the outbox"),
    "events_published": ("events_published_total", "line events handed to the outbox"),
    "snapshots_published": ("snapshots_published_total", "board pictures handed to the outbox with their page"),
    "snapshots_too_large": ("snapshots_too_large_total", "board pictures not sent: too large even at their smallest"),
    "frame_errors": ("frame_errors_total", "frames that could not be used (bad shape, type, size)"),
    "frames_blurred": ("frames_blurred_total", "frames read but not published: text too blurred to trust"),
    "reload_failures": ("reload_failures_total", "reloads refused for an invalid configuration (the old one kept)"),
    "orientation_votes": ("orientation_votes_total", "votes on which way up the board is (line crops read "
                          "each way); a fixed camera votes once per board"),
    "partial_reads": ("partial_reads_total", "frames read where only the changed part of the board was "
                      "detected again"),
}


class Source(Protocol):
    """A part that reports into health (the delivery side and its sinks)."""

    def status(self) -> dict: ...  # fields of the health document

    def faults(self) -> dict[str, str]: ...  # fault name → what is wrong, only while it is

    def metrics(self) -> list[Metric]: ...


def merge_faults(own: dict[str, str | None], sources: list) -> dict[str, str]:
    """``own`` faults that are set, then each source's where ``own`` says nothing of that kind."""
    out = {k: v for k, v in own.items() if v}
    for source in sources:
        for key, message in source.faults().items():
            out.setdefault(key, message)
    return out


class Health:
    """Counters, faults and latency of one daemon; ``document()`` and ``metrics()`` read it."""

    def __init__(self, device_id: str, model: str) -> None:
        self.device_id, self.model = device_id, model
        self.started = time.time()
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.recognise_ms = Histogram()
        self.camera_fault: str | None = None
        self.config_fault: str | None = None  # the last reload's error, until a reload succeeds
        self.blur_fault: str | None = None  # the last frame read was blurred, until a sharp one is
        self.last_frame_ts: float | None = None
        self.sources: list[Source] = []

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] += n

    def faults(self) -> dict[str, str]:
        return merge_faults({"camera": self.camera_fault, "config": self.config_fault, "blur": self.blur_fault},
                            self.sources)

    def document(self) -> dict:
        """The health document: state ``ok`` or ``degraded`` (any fault), faults, model, uptime,
        last frame time, the sources' fields and every counter."""
        faults = self.faults()
        fields: dict = {}
        for source in self.sources:
            fields.update(source.status())
        return {"device": self.device_id, "state": "degraded" if faults else "ok", "faults": faults,
                "model": self.model, "uptime_s": round(time.time() - self.started, 1),
                "last_frame_ts": self.last_frame_ts, **fields, **self.counters}

    def metrics(self) -> list[Metric]:
        """Prometheus metrics: every counter, the latency histogram, the sources' metrics."""
        items: list[Metric] = [(name, "counter", help_text, self.counters[key])
                               for key, (name, help_text) in COUNTERS.items()]
        items.append(("recognition_latency_ms", "histogram", "vision + recognition time per recognised frame in ms",
                      self.recognise_ms))
        for source in self.sources:
            items += source.metrics()
        return items
