"""Real TFLite inference with the shipped int8 model under each installed runtime."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_ocr.imageio import read_image
from edge_ocr.model.contract import ContractError
from edge_ocr.model.interpreter import TFLiteModel, available_runtimes
from edge_ocr.recognition.recognizer import Recognizer
from tests.conftest import MODEL, expected_runtimes
from toolchain.scoring import score


def _cer(pairs: list[tuple[str, str]]) -> float:
    return score([r for r, _ in pairs], [h for _, h in pairs])["cer"]


def test_both_runtimes_are_installed() -> None:
    assert set(expected_runtimes()) <= set(available_runtimes())


def test_samples_are_read_well(shipped: Path, runtime: str, samples) -> None:
    rec = Recognizer(shipped, runtime=runtime)
    results = rec.recognize([read_image(p) for p, _ in samples])
    cer = _cer([(label, r.text) for (_, label), r in zip(samples, results)])
    assert cer <= 0.15, f"CER {cer:.3f} on the bundled samples"
    for r in results:
        assert len(r.char_confidences) == len(r.text)
        assert 0.0 <= r.confidence <= 1.0
        assert r.confidence == pytest.approx(min(r.char_confidences, default=1.0))


def test_runtimes_agree_with_builtin_kernels(shipped: Path, samples) -> None:
    """Same model, same input: tflite-runtime 2.14 and ai-edge-litert give identical logits for a
    fully integer model without depthwise convolutions, and the same text for any model: float
    kernels round apart, and so do the two versions' int8 DEPTHWISE_CONV_2D (by one step on 84
    of 57,600 outputs of the student's first one, measured)."""
    c = Recognizer(shipped).contract
    audit = c.provenance.get("audit", {})
    if not audit.get("float_ops") and "DEPTHWISE_CONV_2D" not in audit.get("ops", {}):
        rng = np.random.default_rng(0)
        x = rng.uniform(0, 255, (1, c.height, 200, c.channels)).astype(np.float32) * c.scale + c.offset
        outs = [TFLiteModel(shipped, runtime=rt, xnnpack=False)(x) for rt in expected_runtimes()]
        assert all(np.array_equal(outs[0], o) for o in outs[1:])
    images = [read_image(p) for p, _ in samples]
    texts = [[r.text for r in Recognizer(shipped, runtime=rt, xnnpack=False).recognize(images)]
             for rt in expected_runtimes()]
    assert all(t == texts[0] for t in texts[1:])


def test_xnnpack_stays_close_to_the_builtin_kernels(shipped: Path, samples) -> None:
    images = [read_image(p) for p, _ in samples]
    labels = [t for _, t in samples]
    fast = [r.text for r in Recognizer(shipped, runtime="litert", xnnpack=True).recognize(images)]
    exact = [r.text for r in Recognizer(shipped, runtime="litert", xnnpack=False).recognize(images)]
    assert abs(_cer(list(zip(labels, fast))) - _cer(list(zip(labels, exact)))) <= 0.02


def test_batch_order_and_no_state_leak_between_lines(runtime: str, samples) -> None:
    rec = Recognizer(MODEL, runtime=runtime)
    images = [read_image(p) for p, _ in samples]
    together = [r.text for r in rec.recognize(images)]
    alone = [rec.recognize([im])[0].text for im in reversed(images)][::-1]
    assert together == alone


def test_beam_search_is_at_least_as_good_as_greedy(shipped: Path, samples) -> None:
    images = [read_image(p) for p, _ in samples]
    labels = [label for _, label in samples]
    greedy = Recognizer(shipped, decoder="greedy").recognize(images)
    beam = Recognizer(shipped, decoder="beam", beam_width=8).recognize(images)
    assert _cer(list(zip(labels, [r.text for r in beam]))) <= _cer(list(zip(labels, [r.text for r in greedy]))) + 0.01


def test_blank_and_tiny_images_do_not_crash() -> None:
    rec = Recognizer(MODEL)
    out = rec.recognize([np.full((40, 200), 255, np.uint8), np.zeros((3, 2, 3), np.uint8)])
    assert len(out) == 2
    assert out[0].text.strip() == ""


def test_mismatched_charset_is_refused(tmp_path: Path) -> None:
    shutil.copy(MODEL, tmp_path / MODEL.name)
    contract = json.loads(MODEL.with_suffix(".json").read_text(encoding="utf-8"))
    (tmp_path / "small.txt").write_text("a\nb\nc\n", encoding="utf-8")
    contract["charset"] = "small.txt"
    (tmp_path / MODEL.with_suffix(".json").name).write_text(json.dumps(contract), encoding="utf-8")
    with pytest.raises(ContractError, match=r"emits .* classes but charset"):
        Recognizer(tmp_path / MODEL.name)


def test_missing_and_corrupt_model_files(tmp_path: Path) -> None:
    shutil.copy(MODEL.with_suffix(".json"), tmp_path / MODEL.with_suffix(".json").name)
    charset = json.loads(MODEL.with_suffix(".json").read_text(encoding="utf-8"))["charset"]
    shutil.copy(MODEL.parent / charset, tmp_path / charset)
    with pytest.raises(FileNotFoundError, match="model file not found"):
        Recognizer(tmp_path / MODEL.name)
    (tmp_path / MODEL.name).write_bytes(b"not a flatbuffer at all" * 10)
    with pytest.raises(ValueError, match="not a loadable TFLite model"):
        Recognizer(tmp_path / MODEL.name)
