"""ONNX import on a tiny PaddleOCR-shaped CTC recogniser built here: the graph edits, onnx2tf,
float and int8 TFLite, compared with ONNX Runtime at several widths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnx2tf")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from toolchain.onnx_import import recognizer as oi  # noqa: E402

SYMBOLS = ["a", "b", "c", "d"]


def tiny_recogniser() -> onnx.ModelProto:
    """x[N,3,48,W] → conv → exact GELU → average pool (count_include_pad=0) → [N,W/4,8]
    → Reshape with a 0 on the batch axis → classifier → Softmax, with PaddleOCR's metadata."""
    rng = np.random.default_rng(0)
    classes = len(SYMBOLS) + 2  # blank + symbols + space

    def const(name: str, value: np.ndarray) -> onnx.TensorProto:
        return numpy_helper.from_array(np.asarray(value, np.float32 if value.dtype.kind == "f" else np.int64), name)

    inits = [
        const("w", rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32)),
        const("b", rng.normal(0, 0.1, 8).astype(np.float32)),
        const("sqrt2", np.array(2**0.5, np.float32)),
        const("one", np.array(1.0, np.float32)),
        const("half", np.array(0.5, np.float32)),
        const("shape", np.array([0, -1, 8], np.int64)),
        const("fc", rng.normal(0, 0.5, (8, classes)).astype(np.float32)),
        const("fc_b", rng.normal(0, 0.1, classes).astype(np.float32)),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Div", ["c", "sqrt2"], ["d"]),
        helper.make_node("Erf", ["d"], ["e"]),
        helper.make_node("Add", ["e", "one"], ["f"]),
        helper.make_node("Mul", ["c", "f"], ["g"]),
        helper.make_node("Mul", ["g", "half"], ["h"]),
        helper.make_node("AveragePool", ["h"], ["p"], kernel_shape=[24, 2], strides=[24, 2], pads=[0, 0, 0, 0],
                         count_include_pad=0),
        helper.make_node("Squeeze", ["p"], ["s"], axes=[2]),
        helper.make_node("Transpose", ["s"], ["t"], perm=[0, 2, 1]),
        helper.make_node("Reshape", ["t", "shape"], ["r"]),
        helper.make_node("MatMul", ["r", "fc"], ["m"]),
        helper.make_node("Add", ["m", "fc_b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=2),
    ]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 48, "w"])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["n", "t", classes])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    helper.set_model_props(model, {"character": "\n".join(SYMBOLS)})
    onnx.checker.check_model(model)
    return model


def _tflite(data: bytes, x: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    it = tf.lite.Interpreter(model_content=data)
    inp = it.get_input_details()[0]
    it.resize_tensor_input(inp["index"], list(x.shape))
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    if inp["dtype"] == np.int8:
        scale, zero = inp["quantization"]
        x = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
    it.set_tensor(inp["index"], x)
    it.invoke()
    y = it.get_tensor(out["index"])
    if y.dtype == np.int8:
        scale, zero = out["quantization"]
        y = (y.astype(np.float32) - zero) * scale
    return y


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> dict:
    source = tiny_recogniser()
    symbols = oi.charset_from_metadata(source)
    prepared, edits = oi.prepare(tiny_recogniser())
    saved = oi.saved_model(prepared, tmp_path_factory.mktemp("import"))
    rng = np.random.default_rng(1)
    lines = [rng.uniform(0, 255, (48, int(w))).astype(np.float32) for w in rng.integers(40, 200, 40)]
    float_bytes = oi.to_tflite(saved, None)
    stride = oi.time_downsample(float_bytes, 3, 48)
    calib = oi.model_inputs(lines, 3, lambda w: -(-w // stride) * stride)
    full = oi.to_tflite(saved, calib)
    selective = oi.to_tflite(saved, calib, oi.model_inputs(lines[:2], 3, lambda _: 96), ("GELU", "MUL", "ADD"))
    return {"source": source, "symbols": symbols, "edits": edits, "float": float_bytes, "stride": stride,
            "int8": full, "selective": selective}


def test_graph_edits_are_found_and_the_charset_read(imported: dict) -> None:
    assert imported["symbols"] == [*SYMBOLS, " "]
    e = imported["edits"]
    assert e["softmax_cut"] and e["gelu_chains"] == 1 and e["average_pools_unmasked"] == 1
    assert (e["channels"], e["height"]) == (3, 48)
    assert imported["stride"] == 4


@pytest.mark.parametrize("width", [64, 200, 512])
def test_float_tflite_matches_onnx_runtime_at_any_width(imported: dict, width: int) -> None:
    x = np.random.default_rng(width).uniform(-1, 1, (1, 3, 48, width)).astype(np.float32)
    want = ort.InferenceSession(imported["source"].SerializeToString()).run(None, {"x": x})[0]
    got = _softmax(_tflite(imported["float"], x.transpose(0, 2, 3, 1)))
    assert got.shape == want.shape == (1, width // 4, len(SYMBOLS) + 2)
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_int8_models_are_integer_where_asked_and_close_to_float(imported: dict, tmp_path: Path) -> None:
    from toolchain.crnn.export import audit

    x = np.random.default_rng(7).uniform(-1, 1, (1, 48, 160, 3)).astype(np.float32)
    ref = _tflite(imported["float"], x)
    for name, allowed in (("int8", set()), ("selective", {"GELU", "MUL", "ADD", "QUANTIZE"})):
        path = tmp_path / f"{name}.tflite"
        path.write_bytes(imported[name])
        _, summary = audit(path)
        assert set(summary["float_ops"]) <= allowed, summary
        assert not any(op.startswith("Flex") or op == "CUSTOM" for op in summary["ops"]), summary["ops"]
        got = _tflite(imported[name], x)
        spread = ref.max() - ref.min()
        assert np.abs(got - ref).mean() < 0.05 * spread, name
    float_path = tmp_path / "float.tflite"
    float_path.write_bytes(imported["float"])
    assert "GELU" in audit(float_path)[1]["ops"], "the exact-GELU chain must become TFLite's GELU"


@pytest.mark.parametrize("kind", ["float", "int8", "selective"])
def test_kept_classes_give_the_full_models_logits_bit_for_bit(imported: dict, kind: str) -> None:
    keep = [0, 2, 4]  # the blank, "b" and "d"
    trimmed = oi.keep_classes(imported[kind], keep)
    x = np.random.default_rng(3).uniform(-1, 1, (1, 48, 64, 3)).astype(np.float32)
    full, cut = _tflite(imported[kind], x), _tflite(trimmed, x)
    assert cut.shape == (*full.shape[:-1], 3)
    np.testing.assert_array_equal(cut, full[..., keep])


def test_classroom_charset_keeps_chinese_in_common_use_and_drops_other_scripts() -> None:
    kept = "的國样從書现樣abcXYZ019,.;:!?()[]，。：；！？、《》“”αβπ√≤≥±×÷→①℃㎡ āáǎàü ㄅ"
    dropped = "あア한ДЖ😀𠀀" + "\u3447"  # kana, hangul, Cyrillic, emoji, rare Han (ext. B and A)
    assert all(oi.classroom_symbol(c) for c in kept), [c for c in kept if not oi.classroom_symbol(c)]
    assert not any(oi.classroom_symbol(c) for c in dropped), [c for c in dropped if oi.classroom_symbol(c)]
    assert not oi.classroom_symbol("ab")
