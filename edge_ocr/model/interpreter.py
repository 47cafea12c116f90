"""The one place that knows which TFLite runtime is installed.

``ai-edge-litert`` (any Python) and ``tflite-runtime`` 2.14 (Python ≤ 3.11, numpy < 2)
expose the same Interpreter API. ``EDGE_OCR_RUNTIME=litert|tflite`` forces one, which is
how the tests run the shipped model under both.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from edge_ocr import options

MODULES = {"litert": "ai_edge_litert.interpreter", "tflite": "tflite_runtime.interpreter"}


class RuntimeMissingError(RuntimeError):
    """No TFLite runtime could be imported."""


def available_runtimes() -> list[str]:
    found = []
    for name, module in MODULES.items():
        try:
            importlib.import_module(module)
            found.append(name)
        except ImportError:
            pass
    return found


def xnnpack_default() -> bool:
    """XNNPACK on unless ``EDGE_OCR_XNNPACK=0``."""
    return os.environ.get("EDGE_OCR_XNNPACK", "1").strip().lower() not in ("0", "false", "no", "off")


def _interpreter_class(runtime: str) -> tuple[str, Any]:
    wanted = runtime if runtime != "auto" else os.environ.get("EDGE_OCR_RUNTIME", "auto")
    if wanted not in options.RUNTIMES:
        raise ValueError(f"runtime must be auto, litert or tflite, got {wanted!r}")
    order = list(MODULES) if wanted == "auto" else [wanted]
    errors = []
    for name in order:
        try:
            return name, importlib.import_module(MODULES[name]).Interpreter
        except ImportError as exc:
            errors.append(f"{MODULES[name]}: {exc}")
    raise RuntimeMissingError(
        "no TFLite runtime importable (pip install ai-edge-litert, or tflite-runtime==2.14.0 "
        "with numpy<2 on Python ≤ 3.11): " + "; ".join(errors)
    )


class TFLiteModel:
    """A single-input, single-output TFLite model fed float arrays.

    Quantises the input and dequantises the output with the tensors' own parameters, so
    float and int8 models are used the same way. Resizes the input per shape and resets
    the LSTM state before every call (the fused LSTM keeps state between invokes).
    """

    def __init__(
        self, path: str | Path, num_threads: int = 1, runtime: str = "auto", xnnpack: bool | None = None
    ) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"model file not found: {path}")
        self.runtime, cls = _interpreter_class(runtime)
        self.xnnpack = xnnpack_default() if xnnpack is None else xnnpack
        kwargs: dict[str, Any] = {}
        if not self.xnnpack:
            # The builtin int8 kernels: bit-exact across tflite-runtime 2.14 and ai-edge-litert
            # (measured). XNNPACK is about twice as fast but requantises int8 its own way, so a
            # near-tie character can come out differently.
            resolver = importlib.import_module(MODULES[self.runtime]).OpResolverType
            kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            self._it = cls(model_path=str(path), num_threads=num_threads, **kwargs)
        except ValueError as exc:
            raise ValueError(f"{path}: not a loadable TFLite model under {self.runtime}: {exc}") from exc
        inputs, outputs = self._it.get_input_details(), self._it.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f"{path}: expected one input and one output, got {len(inputs)} and {len(outputs)}")
        self._in, self._out = inputs[0], outputs[0]
        self._shape: tuple[int, ...] | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(v) for v in self._in["shape_signature"])

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self._in["dtype"])

    @property
    def output_dtype(self) -> np.dtype:
        return np.dtype(self._out["dtype"])

    def _resize(self, shape: tuple[int, ...]) -> None:
        if shape != self._shape:
            self._it.resize_tensor_input(self._in["index"], list(shape), strict=False)
            self._it.allocate_tensors()
            self._in = self._it.get_input_details()[0]
            self._out = self._it.get_output_details()[0]
            self._shape = shape

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self._resize(tuple(x.shape))
        dtype = self.input_dtype
        if dtype == np.float32:
            feed = x.astype(np.float32, copy=False)
        else:
            scale, zero = self._in["quantization"]
            info = np.iinfo(dtype)
            feed = np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)
        self._it.reset_all_variables()
        self._it.set_tensor(self._in["index"], feed)
        self._it.invoke()
        y = self._it.get_tensor(self._out["index"])
        if y.dtype != np.float32:
            scale, zero = self._out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return y
