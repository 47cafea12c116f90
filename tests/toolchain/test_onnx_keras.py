"""The ONNX → tf_keras rebuild against ONNX Runtime on a small graph holding every op form of
PP-OCRv6's backbone (stem with SAME_UPPER convolutions and a padded max pool, depthwise
convolutions, squeeze-excite with HardSigmoid, the exact GELU chain, residual adds, the closing
average pool), and its refusal of what it cannot translate."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("tf_keras")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from toolchain.onnx_import.keras_rebuild import UnsupportedOpError, rebuild  # noqa: E402


def backbone_like(erf_op: str = "Erf") -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    inits, nodes = [], []

    def w(name: str, shape: tuple[int, ...]) -> str:
        inits.append(numpy_helper.from_array(rng.normal(0, 0.3, shape).astype(np.float32), name))
        return name

    def scalar(name: str, value: float) -> str:
        inits.append(numpy_helper.from_array(np.array(value, np.float32), name))
        return name

    def node(op: str, ins: list[str], out: str, **attrs) -> str:
        nodes.append(helper.make_node(op, ins, [out], name=out, **attrs))
        return out

    x = node("Conv", ["x", w("w0", (8, 3, 3, 3)), w("b0", (8,))], "c0", kernel_shape=[3, 3], strides=[2, 2],
             pads=[1, 1, 1, 1])
    x = node("Relu", [x], "r0")
    a = node("Conv", [x, w("w1", (4, 8, 2, 2)), w("b1", (4,))], "c1", kernel_shape=[2, 2], auto_pad="SAME_UPPER")
    a = node("Relu", [a], "r1")
    p = node("MaxPool", [x], "mp", kernel_shape=[2, 2], strides=[1, 1], auto_pad="SAME_UPPER")
    x = node("Concat", [p, a], "cat", axis=1)
    x = node("Conv", [x, w("wdw", (12, 1, 3, 3)), w("bdw", (12,))], "dw", kernel_shape=[3, 3], group=12,
             pads=[1, 1, 1, 1])
    m = node("ReduceMean", [x], "se_mean", axes=[2, 3], keepdims=1)
    m = node("Conv", [m, w("wse", (12, 12, 1, 1)), w("bse", (12,))], "se_fc", kernel_shape=[1, 1])
    m = node("HardSigmoid", [m], "se_gate", alpha=1 / 6, beta=0.5)
    x = node("Mul", [x, m], "se_mul")
    e = node("Conv", [x, w("we", (24, 12, 1, 1)), w("be", (24,))], "expand", kernel_shape=[1, 1])
    d = node("Div", [e, scalar("sqrt2", np.sqrt(2))], "g_div")
    d = node(erf_op, [d], "g_erf")
    d = node("Add", [d, scalar("one", 1.0)], "g_add")
    h = node("Mul", [e, scalar("half", 0.5)], "g_half")
    g = node("Mul", [h, d], "g_out")
    g = node("Conv", [g, w("wp", (12, 24, 1, 1)), w("bp", (12,))], "project", kernel_shape=[1, 1])
    x = node("Add", [x, g], "residual")
    node("AveragePool", [x], "pool", kernel_shape=[2, 2], strides=[2, 2])
    graph = helper.make_graph(nodes, "backbone_like",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, None])],
                              [helper.make_tensor_value_info("pool", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


@pytest.mark.parametrize("width", [32, 56])
def test_the_rebuilt_model_computes_what_onnx_runtime_computes(width: int) -> None:
    model = backbone_like()
    keras_model = rebuild(model, ["pool"], channels=3, height=16)
    x = np.random.default_rng(width).normal(0, 1, (1, 3, 16, width)).astype(np.float32)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = keras_model(x.transpose(0, 2, 3, 1)).numpy().transpose(0, 3, 1, 2)
    assert got.shape == want.shape == (1, 12, 4, width // 4)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_an_op_it_cannot_translate_is_named() -> None:
    with pytest.raises(UnsupportedOpError, match="g_erf"):
        rebuild(backbone_like(erf_op="Tanh"), ["pool"], height=16)
