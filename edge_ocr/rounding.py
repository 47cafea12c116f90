"""The one rounding rule for what leaves the device (MQTT, the API, the CLI's JSON, logs):
confidences to 4 decimals (a character's 0.8512 vs 0.85 matters to the page diff's threshold,
a fifth decimal to no one), pixels to 0.1, milliseconds to 0.01, Unix seconds to 0.001."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def confidence(value: float) -> float:
    return round(float(value), 4)


def confidences(values: Iterable[float]) -> list[float]:
    return [confidence(v) for v in values]


def pixels(points: Sequence[Sequence[float]]) -> list[list[float]]:
    """A polygon (N, 2) as nested lists of floats, 0.1 px."""
    return [[round(float(x), 1), round(float(y), 1)] for x, y in points]


def ms(value: float) -> float:
    return round(float(value), 2)


def seconds(value: float) -> float:
    return round(float(value), 3)
