"""Detector import on a tiny DB-shaped model built here: the scalar-constant edit, onnx2tf, float
TFLite against ONNX Runtime, no layout TRANSPOSEs, and the contract the runtime loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnx2tf")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from toolchain.onnx_import import detector as di  # noqa: E402
from toolchain.onnx_import import recognizer as oi  # noqa: E402

H, W = 64, 96


def tiny_detector() -> onnx.ModelProto:
    """x[N,3,h,w] → conv /2 → ×a + b with shape-[1] constants (PP-LCNetV3's learnable affine)
    → transposed conv ×2 → Sigmoid: a probability map the input's size."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(v, n) for n, v in (
        ("w", rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32)),
        ("a", np.array([1.3], np.float32)), ("b", np.array([-0.2], np.float32)),
        ("up", rng.normal(0, 0.3, (4, 1, 2, 2)).astype(np.float32)))]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("Mul", ["c", "a"], ["m"]),
             helper.make_node("Add", ["m", "b"], ["s"]),
             helper.make_node("ConvTranspose", ["s", "up"], ["t"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Sigmoid", ["t"], ["prob"])]
    graph = helper.make_graph(nodes, "tiny_db",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
                              [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["n", 1, "h", "w"])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    return model


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> dict:
    model = tiny_detector()
    di.fix_input(model, H, W)
    model = oi.simplify(model)
    scalars = di.scalar_constants(model)
    work = tmp_path_factory.mktemp("det")
    np.save(work / "calibration_image_sample_data_20x128x128x3_float32.npy",
            np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32))
    saved = oi.saved_model(model, work)
    return {"scalars": scalars, "float": oi.to_tflite(saved, None), "dir": work}


def test_shape_one_constants_become_scalars_and_leave_no_transposes(imported: dict, tmp_path: Path) -> None:
    from toolchain.crnn.export import audit

    assert imported["scalars"] == 2
    path = tmp_path / "tiny_det_float.tflite"
    path.write_bytes(imported["float"])
    _, summary = audit(path)
    assert "TRANSPOSE" not in summary["ops"] and "TRANSPOSE_CONV" in summary["ops"], summary["ops"]


def test_float_detector_matches_onnx_runtime(imported: dict) -> None:
    import tensorflow as tf

    x = np.random.default_rng(3).uniform(-1, 1, (1, 3, H, W)).astype(np.float32)
    want = ort.InferenceSession(tiny_detector().SerializeToString()).run(None, {"x": x})[0][0, 0]
    it = tf.lite.Interpreter(model_content=imported["float"])
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x.transpose(0, 2, 3, 1))
    it.invoke()
    got = it.get_tensor(it.get_output_details()[0]["index"]).reshape(H, W)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_the_contract_is_what_the_runtime_loads(imported: dict, tmp_path: Path) -> None:
    from edge_ocr.vision.detector import TextDetector

    path = tmp_path / "tiny_det_int8.tflite"
    path.write_bytes(imported["float"])
    summary = di.audit_and_contract(path, "float32", H, W, {"source": "test"})
    assert summary["ops"]["LOGISTIC"] == 1
    det = TextDetector(path)
    assert (det.contract.height, det.contract.width, det.contract.colour_order) == (H, W, "BGR")
    assert det.params.box_thresh == di.POSTPROCESS["box_thresh"]
    image = np.full((150, 200, 3), 200, np.uint8)
    prob, scale = det.probability(image)
    assert prob.shape == (round(150 * scale), round(200 * scale)) and 0 <= prob.min() <= prob.max() <= 1
