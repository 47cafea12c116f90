"""The one place a page reader is built from the configuration: recogniser, detector and
vision settings. The CLI, the daemon, ``serve``/the API and the benchmarks all call
:func:`build_reader`, so a ``[vision]`` or ``[recognizer]`` choice reaches every entry point."""

from __future__ import annotations

import dataclasses

import numpy as np

from edge_ocr.config import Config, RecognizerConfig, VisionConfig
from edge_ocr.page.reader import PageReader
from edge_ocr.paths import resolve
from edge_ocr.recognition.recognizer import Recognizer
from edge_ocr.vision.detector import TextDetector


def interpreter_settings(r: RecognizerConfig) -> dict:
    """How every TFLite interpreter is built (threads, runtime, XNNPACK): one set of settings
    for the recogniser and the detector alike, so a switch cannot reach one model only."""
    return {"num_threads": r.threads, "runtime": r.runtime, "xnnpack": r.xnnpack}


def build_recognizer(r: RecognizerConfig) -> Recognizer:
    return Recognizer(resolve(r.model), decoder=r.decoder, beam_width=r.beam_width,
                      lm=resolve(r.lm) if r.lm else None, lm_weight=r.lm_weight, **interpreter_settings(r))


def build_detector(v: VisionConfig, r: RecognizerConfig) -> TextDetector | None:
    """The configured text detector, or None for the classical splitter."""
    if v.detector != "db":
        return None
    detector = TextDetector(resolve(v.detector_model), max_side=v.detector_side or None, enhance=v.enhance_contrast,
                            text_height=v.text_height, small_text=v.small_text, max_tiles=v.max_tiles,
                            activity=v.text_activity, min_text=v.min_text,
                            **interpreter_settings(r))
    changes = {k: getattr(v, k) for k in ("box_thresh", "unclip_ratio") if getattr(v, k)}
    if changes:
        detector.params = dataclasses.replace(detector.params, **changes)
    return detector


def build_reader(cfg: Config, recognizer: Recognizer | None = None, cache_size: int | None = None) -> PageReader:
    """A page reader as ``cfg`` says; ``recognizer`` shares an already loaded one."""
    r, v = cfg.recognizer, cfg.vision
    rec = recognizer or build_recognizer(r)
    region = np.asarray(v.fixed_region, np.float32) if v.fixed_region else None
    return PageReader(rec, region, v.binarizer, cache_size or r.cache_size, v.analysis_side,
                      build_detector(v, r), v.min_confidence, v.min_sharpness)
