"""The student's head at both BiLSTM strides: one output frame per input frame (odd counts too)
and a full-integer int8 conversion with no float tensor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from toolchain.crnn.student import FEATURES, head, to_tflite


@pytest.mark.parametrize("stride", [8, 16])
def test_head_keeps_one_frame_per_input_frame_and_converts_to_full_int8(stride: int, tmp_path: Path) -> None:
    import tf_keras as keras

    from toolchain.crnn.export import audit

    cfg = {"classes": 40, "lstm": 8, "lstm_stride": stride, "dropout": 0.1}
    model = head(cfg, batch_size=1, training=False)
    rng = np.random.default_rng(0)
    for t in (7, 8, 31):
        logits, feats = model(rng.normal(size=(1, t, FEATURES)).astype(np.float32))
        assert logits.shape == (1, t, 40) and feats.shape == (1, t, 120)

    def calib():
        for t in (9, 16, 23) * 4:
            yield [rng.normal(size=(1, t, FEATURES)).astype(np.float32)]

    path = tmp_path / "head.tflite"
    path.write_bytes(to_tflite(keras.Model(model.input, model.outputs[0]), calib))
    _, summary = audit(path)
    assert summary["float_ops"] == [] and "DEQUANTIZE" not in summary["ops"], "no op touches float32"
    assert summary["ops"]["UNIDIRECTIONAL_SEQUENCE_LSTM"] == 2, "the BiLSTM: two fused LSTMs"


def _args(out, **kw):
    import argparse

    base = {"out": out, "lstm": None, "lstm_stride": None, "init": None, "threads": 1, "steps": 1, "lr": 1e-3,
            "batch": 2, "eval_every": 1, "seed": 0}
    return argparse.Namespace(**{**base, **kw})


def test_a_run_is_never_silently_trained_with_another_shape_or_start(tmp_path) -> None:
    """--init of another shape, --init on a run that has checkpoints, and another --lstm-stride on
    an existing run are refused by name before anything is written or trained."""
    import json

    from edge_ocr.paths import ROOT
    from toolchain.crnn.student import train

    shipped = ROOT / "models" / "crnn_student_zh_en.head.npz"
    with pytest.raises(SystemExit, match="lstm_stride"):
        train(_args(tmp_path / "new", lstm_stride=16, init=shipped))
    assert not (tmp_path / "new" / "head.json").exists(), "a refused run leaves no shape behind"

    run = tmp_path / "run"
    (run / "ckpt").mkdir(parents=True)
    (run / "head.json").write_text(json.dumps({"lstm": 64, "dropout": 0.1, "lstm_stride": 8, "classes": 10369}))
    with pytest.raises(SystemExit, match="another head"):
        train(_args(run, lstm_stride=16))
    with pytest.raises(SystemExit, match="new run"):
        train(_args(run, init=shipped))
    assert json.loads((run / "head.json").read_text())["lstm_stride"] == 8
