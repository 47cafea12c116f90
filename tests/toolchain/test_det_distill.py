"""The distilled detector's toolchain without the teacher: a tiny four-level ONNX backbone built
here, composed with the student head into one TFLite, against the same head on ONNX Runtime's
features; the training crops the runtime would see; the split by source image."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnx2tf")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from toolchain.distill import detector as dd  # noqa: E402


def tiny_backbone() -> onnx.ModelProto:
    """x[1,3,448,800] → four strided convolutions: 48, 96, 192, 384 channels at strides 4-32,
    exposed in a shuffled order (the composition must match them by channel count)."""
    rng = np.random.default_rng(0)
    nodes, inits, prev, cin = [], [], "x", 3
    for k, (cout, stride) in enumerate(zip(dd.CHANNELS, (4, 2, 2, 2))):
        w = f"w{k}"
        inits.append(numpy_helper.from_array(rng.normal(0, 0.3, (cout, cin, stride, stride)).astype(np.float32), w))
        nodes.append(helper.make_node("Conv", [prev, w], [f"c{k}"], kernel_shape=[stride, stride],
                                      strides=[stride, stride]))
        prev, cin = f"c{k}", cout
    shapes = {k: [1, c, dd.HEIGHT // s, dd.WIDTH // s] for k, (c, s) in enumerate(zip(dd.CHANNELS, dd.STRIDES))}
    outs = [helper.make_tensor_value_info(f"c{k}", TensorProto.FLOAT, shapes[k]) for k in (2, 0, 3, 1)]
    graph = helper.make_graph(nodes, "tiny_backbone",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, dd.HEIGHT, dd.WIDTH])],
                              outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    return model


@pytest.fixture(scope="module")
def composed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    import keras

    keras.utils.set_random_seed(1)
    head = dd.head(width=8)
    return {"head": head, "tflite": dd.compose(tiny_backbone(), head, quantise=False),
            "dir": tmp_path_factory.mktemp("distill")}


def test_composed_detector_is_backbone_then_head(composed: dict) -> None:
    import tensorflow as tf

    x = np.random.default_rng(3).uniform(-1, 1, (1, 3, dd.HEIGHT, dd.WIDTH)).astype(np.float32)
    sess = ort.InferenceSession(tiny_backbone().SerializeToString())
    feats = {o.shape[1]: o.transpose(0, 2, 3, 1) for o in sess.run(None, {"x": x})}
    want = composed["head"]([feats[c] for c in dd.CHANNELS], training=False).numpy()
    it = tf.lite.Interpreter(model_content=composed["tflite"])
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x.transpose(0, 2, 3, 1))
    it.invoke()
    got = it.get_tensor(it.get_output_details()[0]["index"])
    assert got.shape == (1, dd.HEIGHT, dd.WIDTH, 1)
    np.testing.assert_allclose(got, want, atol=2e-4)


def test_composed_detector_uses_only_ops_xnnpack_runs(composed: dict) -> None:
    from toolchain.crnn.export import audit

    path = Path(composed["dir"]) / "tiny.tflite"
    path.write_bytes(composed["tflite"])
    _, summary = audit(path)
    ops = set(summary["ops"])
    assert {"DEPTH_TO_SPACE", "RESIZE_NEAREST_NEIGHBOR", "LOGISTIC"} <= ops, ops
    assert not ops & {"TILE", "TRANSPOSE", "FlexDepthToSpace", "CUSTOM"}, ops


def test_training_crops_are_what_the_runtime_feeds() -> None:
    rng = random.Random(0)
    narrow = np.full((300, 100, 3), 30, np.uint8)  # at every scale and turn drawn, 3:1 leaves padding
    for _ in range(8):
        tile = dd.random_tile(narrow, rng)
        assert tile.shape == (dd.HEIGHT, dd.WIDTH, 3) and tile.dtype == np.uint8
        assert (tile[-1, -1] == 128).all()  # padding: the mean colour, as the runtime pads
    big = np.random.default_rng(1).integers(0, 255, (1600, 2400, 3), np.uint8)
    assert not (dd.random_tile(big, rng) == 128).all(axis=2).all()


def test_validation_holds_out_whole_images() -> None:
    groups = np.repeat(np.arange(30), 6)
    train, val = dd._split(groups, seed=0)
    assert len(val) == 3 * 6 and not set(groups[train]) & set(groups[val])
