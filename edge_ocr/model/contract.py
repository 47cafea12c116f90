"""The model contract: the JSON file beside each ``.tflite`` that says how to use it.

Nothing about a model is hard-coded in the runtime; everything it needs (charset, input
height, width policy, normalisation, blank index) is read and validated here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ContractError(ValueError):
    """A model contract is missing, malformed or inconsistent with its model."""


def read_contract(path: str | Path, what: str = "model") -> tuple[dict[str, Any], Path]:
    """(the JSON of ``<model>.json``, its path); a ``.tflite`` path finds the JSON beside it."""
    path = Path(path)
    if path.suffix == ".tflite":
        path = path.with_suffix(".json")
    if not path.is_file():
        raise ContractError(f"{what} contract not found: {path} (each .tflite needs a .json beside it)")
    try:
        return json.loads(path.read_text(encoding="utf-8")), path
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContractError(f"{path}: not valid JSON: {exc}") from exc


@dataclass(frozen=True)
class WidthPolicy:
    """``dynamic``: any width that is a multiple of ``multiple`` in [min, max];
    ``buckets``: the input is padded to the smallest listed width that fits."""

    kind: str
    multiple: int = 4
    min: int = 32
    max: int = 1600
    buckets: tuple[int, ...] = ()

    def width_for(self, natural: int) -> int:
        """Input width for a line whose normalised width is ``natural``."""
        if self.kind == "buckets":
            for b in self.buckets:
                if natural <= b:
                    return b
            return self.buckets[-1]
        w = -(-max(natural, self.min) // self.multiple) * self.multiple
        return min(w, self.max)

    @property
    def max_width(self) -> int:
        return self.buckets[-1] if self.kind == "buckets" else self.max


@dataclass(frozen=True)
class ModelContract:
    id: str
    model_path: Path
    charset_path: Path
    height: int
    channels: int
    width: WidthPolicy
    scale: float
    offset: float
    blank_index: int
    time_downsample: int
    quantization: str
    metrics: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> ModelContract:
        """Load ``<model>.json``; a ``.tflite`` path finds the JSON beside it."""
        raw, path = read_contract(path)
        return cls.from_dict(raw, base=path.parent, source=str(path))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], base: Path, source: str = "contract") -> ModelContract:
        def need(obj: dict, key: str, kind: type | tuple[type, ...], where: str) -> Any:
            if not isinstance(obj, dict) or key not in obj:
                raise ContractError(f"{source}: missing key '{where}{key}'")
            value = obj[key]
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ContractError(f"{source}: key '{where}{key}' has the wrong type ({type(value).__name__})")
            return value

        inp = need(raw, "input", dict, "")
        wp = need(inp, "width_policy", dict, "input.")
        kind = need(wp, "kind", str, "input.width_policy.")
        if kind == "dynamic":
            width = WidthPolicy("dynamic", int(wp.get("multiple", 4)), int(wp.get("min", 32)), int(wp.get("max", 1600)))
        elif kind == "buckets":
            buckets = tuple(sorted(int(b) for b in need(wp, "widths", list, "input.width_policy.")))
            if not buckets:
                raise ContractError(f"{source}: 'input.width_policy.widths' is empty")
            width = WidthPolicy("buckets", buckets=buckets)
        else:
            raise ContractError(f"{source}: 'input.width_policy.kind' must be dynamic or buckets, got {kind!r}")
        norm = need(inp, "normalisation", dict, "input.")
        out = need(raw, "output", dict, "")
        contract = cls(
            id=need(raw, "id", str, ""),
            model_path=base / need(raw, "model", str, ""),
            charset_path=base / need(raw, "charset", str, ""),
            height=need(inp, "height", int, "input."),
            channels=int(inp.get("channels", 1)),
            width=width,
            scale=float(need(norm, "scale", (int, float), "input.normalisation.")),
            offset=float(need(norm, "offset", (int, float), "input.normalisation.")),
            blank_index=need(out, "blank_index", int, "output."),
            time_downsample=need(out, "time_downsample", int, "output."),
            quantization=str(raw.get("quantization", "unknown")),
            metrics=dict(raw.get("metrics", {})),
            provenance=dict(raw.get("provenance", {})),
        )
        if contract.blank_index != 0:
            raise ContractError(f"{source}: 'output.blank_index' must be 0 (the charset file maps symbols to 1..N)")
        if contract.channels not in (1, 3):
            raise ContractError(f"{source}: 'input.channels' must be 1 or 3")
        return contract


@dataclass(frozen=True)
class DBParams:
    """DB post-processing settings (PaddleOCR's defaults for its PP-OCR detectors; a detector's
    contract may override them in its ``postprocess`` section)."""

    thresh: float = 0.3  # probability above which a pixel is text
    box_thresh: float = 0.5  # mean probability a region needs to count as text
    unclip_ratio: float = 1.6
    min_size: float = 3.0  # shorter side, map pixels, below which a region is noise
    max_candidates: int = 1000


@dataclass(frozen=True)
class DetectorContract:
    """How to feed a DB text detector: fixed input height × width, per-channel normalisation
    ((x/255 − mean) / std, channels in ``colour_order``), the post-processing it was made for."""

    id: str
    model_path: Path
    height: int
    width: int
    colour_order: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    max_side: int
    params: DBParams
    quantization: str = "unknown"
    metrics: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> DetectorContract:
        """Load ``<model>.json`` (a ``.tflite`` path finds the JSON beside it)."""
        raw, path = read_contract(path, "detector")
        if raw.get("kind") != "detector":
            raise ContractError(f"{path}: 'kind' must be 'detector' (is this a recogniser's contract?)")
        try:
            inp, post = raw["input"], raw.get("postprocess", {})
            norm = inp["normalisation"]
            contract = cls(
                id=str(raw["id"]), model_path=path.parent / raw["model"], height=int(inp["height"]),
                width=int(inp["width"]), colour_order=str(inp.get("colour_order", "BGR")),
                mean=tuple(float(v) for v in norm["mean"]), std=tuple(float(v) for v in norm["std"]),
                max_side=int(inp.get("max_side", inp["width"])),
                params=DBParams(**{k: type(getattr(DBParams(), k))(v) for k, v in post.items()}),
                quantization=str(raw.get("quantization", "unknown")),
                metrics=dict(raw.get("metrics", {})), provenance=dict(raw.get("provenance", {})))
        except KeyError as exc:
            raise ContractError(f"{path}: missing key {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise ContractError(f"{path}: malformed value: {exc}") from exc
        if contract.colour_order not in ("BGR", "RGB") or len(contract.mean) != 3 or len(contract.std) != 3:
            raise ContractError(f"{path}: colour_order must be BGR or RGB with 3 means and 3 stds")
        return contract
