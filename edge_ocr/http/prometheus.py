"""Prometheus text exposition (format 0.0.4) without a client library: counters, gauges and
histograms are few, and rendering them is a dozen lines."""

from __future__ import annotations

import bisect
import threading

LATENCY_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)


class Histogram:
    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS_MS) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        with self._lock:
            self.counts[bisect.bisect_left(self.buckets, value)] += 1
            self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def lines(self, name: str) -> list[str]:
        with self._lock:
            out, running = [], 0
            for bound, n in zip(self.buckets, self.counts):
                running += n
                out.append(f'{name}_bucket{{le="{bound}"}} {running}')
            out.append(f'{name}_bucket{{le="+Inf"}} {running + self.counts[-1]}')
            out += [f"{name}_sum {self.sum:.3f}", f"{name}_count {running + self.counts[-1]}"]
        return out


Metric = tuple[str, str, str, "float | Histogram"]  # name, type (counter|gauge|histogram), help, value


def render(metrics: list[Metric]) -> str:
    """(name, type, help, value) → exposition text. Names get the ``edge_ocr_`` prefix."""
    out = []
    for name, kind, help_text, value in metrics:
        full = f"edge_ocr_{name}"
        out += [f"# HELP {full} {help_text}", f"# TYPE {full} {kind}"]
        out += value.lines(full) if isinstance(value, Histogram) else [f"{full} {float(value):g}"]
    return "\n".join(out) + "\n"
