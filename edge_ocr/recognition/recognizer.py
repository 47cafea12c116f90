"""Line recogniser: normalise line crops, run the CTC model in width buckets, decode.

predictor = preprocess (``preprocess``) + model (``interpreter``) + postprocess (``ctc``),
all configured by the model contract.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_ocr import options
from edge_ocr.model.contract import ContractError, ModelContract
from edge_ocr.model.interpreter import TFLiteModel
from edge_ocr.recognition import ctc
from edge_ocr.recognition.charset import Charset
from edge_ocr.recognition.lm import CharBigramLM
from edge_ocr.recognition.preprocess import input_tensor, normalize_line


@dataclass
class LineResult:
    """One recognised line: text, line confidence and one confidence per character."""

    text: str
    confidence: float
    char_confidences: list[float] = field(default_factory=list)
    ms: float = 0.0


class Recognizer:
    """Recognises single-line images with a model described by its contract."""

    def __init__(
        self,
        model: str | Path,
        num_threads: int = 1,
        runtime: str = "auto",
        decoder: str = "greedy",
        beam_width: int = 8,
        lm: str | Path | None = None,
        lm_weight: float = 0.1,
        xnnpack: bool | None = None,
    ) -> None:
        if decoder not in options.DECODERS:
            raise ValueError(f"decoder must be one of {options.DECODERS}, got {decoder!r}")
        self.contract = ModelContract.load(model)
        if not self.contract.charset_path.is_file():
            raise ContractError(f"charset file not found: {self.contract.charset_path}")
        self.charset = Charset.load(self.contract.charset_path)
        self.model = TFLiteModel(self.contract.model_path, num_threads=num_threads, runtime=runtime, xnnpack=xnnpack)
        self.decoder, self.beam_width = decoder, beam_width
        self.lm = CharBigramLM.load(lm) if lm else None
        self.lm_weight = lm_weight
        if self.lm is not None and self.lm.num_classes != self.charset.num_classes:
            raise ContractError(
                f"language model {lm} has {self.lm.num_classes} classes, charset {self.charset.num_classes}"
            )
        shape = self.model.input_shape
        if len(shape) != 4 or shape[1] != self.contract.height:
            raise ContractError(
                f"{self.contract.model_path}: input shape {shape} does not match contract height {self.contract.height}"
            )
        self.batch = shape[0] if shape[0] > 0 else 1
        c = self.contract
        blank = np.full((self.batch, c.height, c.width.width_for(64), c.channels), 255.0, np.float32)
        probe = self.model(blank * c.scale + c.offset)
        if probe.shape[-1] != self.charset.num_classes:
            raise ContractError(
                f"model {self.contract.model_path.name} emits {probe.shape[-1]} classes but charset "
                f"{self.contract.charset_path.name} has {self.charset.num_classes} (symbols + blank)"
            )

    @property
    def runtime(self) -> str:
        return self.model.runtime

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """Line crop → normalised (height, natural width) float image."""
        c = self.contract
        return normalize_line(image, c.height, multiple=c.width.multiple, max_width=c.width.max_width)

    def recognize(self, images: list[np.ndarray]) -> list[LineResult]:
        """Recognise several line images; lines of similar width share input shapes."""
        return self.recognize_prepared([self.prepare(im) for im in images])

    def recognize_prepared(self, lines: list[np.ndarray]) -> list[LineResult]:
        """Recognise lines already normalised by :meth:`prepare`."""
        c = self.contract
        widths = [c.width.width_for(line.shape[1]) for line in lines]
        results: list[LineResult | None] = [None] * len(lines)
        order = sorted(range(len(lines)), key=lambda i: widths[i])
        for start in range(0, len(order), self.batch):
            group = order[start : start + self.batch]
            width = max(widths[i] for i in group)
            x = input_tensor([lines[i] for i in group], width, c.channels, c.scale, c.offset, self.batch)
            t0 = time.perf_counter()
            logits = self.model(x)
            for j, i in enumerate(group):
                results[i] = self._decode(logits[j])
            ms = (time.perf_counter() - t0) * 1000 / len(group)
            for i in group:
                results[i].ms = ms
        return [r for r in results if r is not None]

    def _decode(self, logits: np.ndarray) -> LineResult:
        if self.decoder == "greedy":
            d = ctc.greedy_logits(logits)
        else:
            d = ctc.beam_search(ctc.log_softmax(logits), self.beam_width, lm=self.lm, lm_weight=self.lm_weight)
        return LineResult(self.charset.decode(d.ids), d.confidence, d.char_conf)
