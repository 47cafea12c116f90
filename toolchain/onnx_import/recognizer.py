"""Import an ONNX CTC line recogniser (PaddleOCR's PP-OCR ones) as int8 TFLite with our contract.

    python -m toolchain.onnx_import.recognizer --onnx ppocrv6 --name ppocrv6_small --out models
    python -m toolchain.onnx_import.recognizer --onnx path/to/rec.onnx --name mine --out models

``ppocrv4`` / ``ppocrv6`` name the recognisers inside the ``rapidocr_onnxruntime`` 1.4.4 and
``rapidocr`` 3.10.0 wheels (``make bench-accuracy`` installs them). The charset comes from the
ONNX metadata (``character``, plus a space as PaddleOCR's ``use_space_char`` adds).

What the import does to the graph, and why:

1. the final Softmax is cut, so the model emits logits like ours (int8 keeps more of the
   ranking in logits than in probabilities, and the runtime's decoder normalises anyway);
2. batch is fixed to 1 and the width left dynamic, then onnx-simplifier folds every shape
   computation into constants; Reshape's "copy this dimension" 0 on the batch axis becomes 1,
   which onnx2tf otherwise resolves from its dummy run and bakes one width into the model;
3. each exact-GELU chain ``x·(erf(x/√2)+1)·0.5`` is re-associated to ``(x·0.5)·(erf(x/√2)+1)``,
   the form TensorFlow Lite fuses into its GELU op; left alone it needs the Flex ``Erf`` op,
   which no runtime here has;
4. an AveragePool without padding gets ``count_include_pad=1`` (same result), which spares
   the int8 DIV onnx2tf would otherwise add;
5. with ``--keep zh_en``, the classifier keeps only the classes a Chinese/English classroom
   writes (:func:`classroom_symbol`): PP-OCRv6's 18,709 symbols include kana, IPA, emoji and
   7,140 rare or non-Chinese Han characters; 10,368 remain (the file shrinks by 1.2 MB and the
   classifier by 45 %). The cut is made on the converted TFLite models (:func:`keep_classes`),
   so the kept classes' int8 logits are the full model's, bit for bit.

onnx2tf turns the result into a SavedModel (NHWC); the TFLite converter makes a float model
and an int8 one calibrated on lines rendered here through the runtime's own normalisation:
convolutions and fully connected layers in int8, the op types of ``FLOAT_OPS`` in float
(``--float-ops ''`` gives full int8). Both get a contract and an op audit; ``toolchain.bench.evaluate``
gives the parity report (``make import-ppocr`` runs both).
"""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from edge_ocr.model.contract import WidthPolicy
from toolchain.bench.peers import PPOCR, package_file
from toolchain.common import import_parser

KNOWN = {"ppocrv4": "PP-OCRv4 mobile", "ppocrv6": "PP-OCRv6 small"}
PADDLE = {"licence": "Apache-2.0", "source": "PaddlePaddle/PaddleOCR (https://github.com/PaddlePaddle/PaddleOCR)",
          "height": 48}
# What the runtime feeds an imported model: the grey normalised line on every channel, then
# x·scale + offset, which is PaddleOCR's (x/255 − 0.5)/0.5.
NORMALISATION = {"scale": 1 / 127.5, "offset": -1.0, "polarity": "dark_on_light",
                 "note": "grey line from edge_ocr.recognition.preprocess.normalize_line on every channel, "
                         "then x*scale+offset = PaddleOCR's (x/255-0.5)/0.5"}


class ImportFailedError(RuntimeError):
    """The ONNX model is not a CTC line recogniser this importer can handle (the message says why)."""


def resolve(source: str) -> tuple[Path, str]:
    """(ONNX path, description) for a file path or one of :data:`KNOWN`."""
    if source in KNOWN:
        package, relative = PPOCR[KNOWN[source]]
        path = package_file(package, relative)
        version = _dist_version(package)
        return path, f"{KNOWN[source]} recognition ({relative} from the {package} {version} wheel)"
    path = Path(source)
    if not path.is_file():
        raise ImportFailedError(f"{source}: no such file (or use one of {sorted(KNOWN)})")
    return path, path.name


def _dist_version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "?"


def charset_from_metadata(model: onnx.ModelProto) -> list[str]:
    """PaddleOCR's symbols (ONNX metadata ``character``) plus the space it appends."""
    meta = {p.key: p.value for p in model.metadata_props}
    if "character" not in meta:
        raise ImportFailedError("the ONNX metadata has no 'character' entry; pass --charset")
    symbols = meta["character"].split("\n")
    while symbols and symbols[-1] == "":
        symbols.pop()
    return [*symbols, " "] if " " not in symbols else symbols


# Non-Han blocks a zh/en classroom writes: Latin with pinyin tones, tone marks, Greek (not Coptic),
# punctuation, super/subscripts, currency, letterlike (℃), Roman numerals, arrows, maths,
# enclosed numbers, shapes, ticks and stars, CJK punctuation, bopomofo, enclosed CJK and units,
# vertical and small forms, fullwidth forms.
CLASSROOM_BLOCKS = ((0x20, 0x24F), (0x2B0, 0x2FF), (0x370, 0x3E1), (0x3F0, 0x3FF), (0x2000, 0x22FF),
                    (0x2460, 0x27BF), (0x3000, 0x303F), (0x3100, 0x312F), (0x3200, 0x33FF),
                    (0xFE30, 0xFE6F), (0xFF01, 0xFF64), (0xFFE0, 0xFFEF))
BIG5_COMMON = (0xA440, 0xC67E)  # Big5 level 1: Taiwan's 5,401 frequently used characters


def _is_han(c: str) -> bool:
    o = ord(c)
    return 0x3400 <= o <= 0x4DBF or 0x4E00 <= o <= 0x9FFF or 0xF900 <= o <= 0xFAFF or 0x20000 <= o <= 0x2FFFF


def classroom_symbol(symbol: str) -> bool:
    """True for what a Chinese/English classroom writes: Han characters of GB 2312 (the 6,763
    simplified characters in common use) or of Big5 level 1 (traditional, in common use), and
    the :data:`CLASSROOM_BLOCKS`. Decided by Python's own codecs, so no list is downloaded."""
    if len(symbol) != 1:
        return False
    if _is_han(symbol):
        try:
            symbol.encode("gb2312")
            return True
        except UnicodeEncodeError:
            pass
        try:
            code = int.from_bytes(symbol.encode("big5"), "big")
        except UnicodeEncodeError:
            return False
        return BIG5_COMMON[0] <= code <= BIG5_COMMON[1]
    return any(lo <= ord(symbol) <= hi for lo, hi in CLASSROOM_BLOCKS)


def keep_classes(tflite: bytes, keep: list[int]) -> bytes:
    """The TFLite model with its classifier (the FULLY_CONNECTED at the output, optionally
    followed by a DEQUANTIZE) cut to the class indices ``keep`` (0, the CTC blank, first).

    Cut after conversion rather than in the ONNX graph: the kept classes keep their weights,
    per-channel scales and the output's quantisation bit for bit, so the trimmed int8 model
    gives the full model's logits (an ONNX-side cut re-calibrates, and int8 rounding then moved
    the real dev lines' CER by ±0.004 in either direction).
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(tflite))
    graph = model.subgraphs[0]
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    producer = {o: op for op in graph.operators for o in op.outputs}
    chain = [graph.outputs[0]]
    op = producer[chain[0]]
    if codes[op.opcodeIndex] == schema.BuiltinOperator.DEQUANTIZE:
        chain.append(op.inputs[0])
        op = producer[op.inputs[0]]
    if codes[op.opcodeIndex] != schema.BuiltinOperator.FULLY_CONNECTED or len(op.inputs) < 3:
        raise ImportFailedError("--keep needs a FULLY_CONNECTED classifier with a bias at the output")
    index = np.asarray(keep)
    for t in op.inputs[1:3]:  # weights [classes, features], bias [classes]
        tensor = graph.tensors[t]
        buf = model.buffers[tensor.buffer]
        dtype = {schema.TensorType.FLOAT32: np.float32, schema.TensorType.INT8: np.int8,
                 schema.TensorType.INT32: np.int32}[tensor.type]
        value = np.frombuffer(bytes(buf.data), dtype).reshape(tensor.shape)[index]
        buf.data = np.frombuffer(value.tobytes(), np.uint8)
        tensor.shape = np.asarray(value.shape, np.int32)
        q = tensor.quantization
        if q is not None and q.scale is not None and len(q.scale) > 1:
            q.scale, q.zeroPoint = np.asarray(q.scale)[index], np.asarray(q.zeroPoint)[index]
    for t in chain:
        tensor = graph.tensors[t]
        tensor.shape[-1] = len(keep)
        if tensor.shapeSignature is not None:
            tensor.shapeSignature[-1] = len(keep)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {o: n for n in graph.node for o in n.output}


def _consumers(graph: onnx.GraphProto, name: str) -> list[onnx.NodeProto]:
    return [n for n in graph.node if name in n.input]


def _scalar(graph: onnx.GraphProto, name: str) -> float | None:
    for init in graph.initializer:
        if init.name == name:
            value = numpy_helper.to_array(init)
            return float(value.reshape(-1)[0]) if value.size == 1 else None
    node = _producers(graph).get(name)
    if node is not None and node.op_type == "Constant":
        value = numpy_helper.to_array(node.attribute[0].t)
        return float(value.reshape(-1)[0]) if value.size == 1 else None
    return None


def cut_softmax(model: onnx.ModelProto) -> bool:
    """Make the graph output the logits the final Softmax reads. True if there was one."""
    graph = model.graph
    if len(graph.output) != 1:
        raise ImportFailedError(f"expected one output, the model has {len(graph.output)}")
    out = graph.output[0]
    node = _producers(graph).get(out.name)
    if node is None or node.op_type != "Softmax":
        return False
    graph.node.remove(node)
    out.name = node.input[0]
    return True


def fix_batch(model: onnx.ModelProto) -> tuple[int, int]:
    """Batch 1, height and channels as the model says, width dynamic. Returns (channels, height)."""
    graph = model.graph
    if len(graph.input) != 1:
        raise ImportFailedError(f"expected one input, the model has {len(graph.input)}")
    dims = graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4 or not dims[1].dim_value:
        raise ImportFailedError("expected an NCHW input with a fixed channel count")
    dims[0].dim_value = 1
    height = dims[2].dim_value or PADDLE["height"]
    dims[2].dim_value = height
    dims[3].dim_param = "width"
    return dims[1].dim_value, height


def batch_one_reshapes(model: onnx.ModelProto) -> int:
    """Reshape targets with 0 (copy) on the batch axis get an explicit 1."""
    graph, count = model.graph, 0
    shapes = {i.name: i for i in graph.initializer}
    for node in graph.node:
        if node.op_type != "Reshape" or node.input[1] not in shapes:
            continue
        target = numpy_helper.to_array(shapes[node.input[1]]).copy()
        if target.size and target[0] == 0:
            target[0] = 1
            name = f"{node.name or node.output[0]}_batch1"
            graph.initializer.append(numpy_helper.from_array(target.astype(np.int64), name))
            node.input[1] = name
            count += 1
    return count


def fuse_ready_gelu(model: onnx.ModelProto) -> int:
    """Re-associate exact-GELU chains into the form TFLite fuses (see the module docstring)."""
    graph = model.graph
    half = "edge_ocr_gelu_half"
    graph.initializer.append(numpy_helper.from_array(np.array(0.5, np.float32), half))

    def only(name: str, op: str) -> onnx.NodeProto | None:
        nodes = _consumers(graph, name)
        return nodes[0] if len(nodes) == 1 and nodes[0].op_type == op else None

    count = 0
    for div in [n for n in graph.node if n.op_type == "Div"]:
        k = _scalar(graph, div.input[1])
        if k is None or abs(k - 2**0.5) > 1e-5:
            continue
        erf = only(div.output[0], "Erf")
        add = erf and only(erf.output[0], "Add")
        mul1 = add and only(add.output[0], "Mul")
        mul2 = mul1 and only(mul1.output[0], "Mul")
        if not mul2 or div.input[0] not in mul1.input:
            continue
        one = next(i for i in add.input if i != erf.output[0])
        c = next(i for i in mul2.input if i != mul1.output[0])
        if _scalar(graph, one) != 1.0 or _scalar(graph, c) != 0.5:
            continue
        mul1.input[:] = [div.input[0], half]
        mul2.input[:] = [mul1.output[0], add.output[0]]
        count += 1
    return count


def plain_average_pools(model: onnx.ModelProto) -> int:
    """AveragePool without padding: ``count_include_pad`` changes nothing, so set it to 1; with 0
    onnx2tf adds a mask-and-divide (a DIV that tflite-runtime 2.14 has no int8 kernel for)."""
    count = 0
    for node in model.graph.node:
        if node.op_type != "AveragePool":
            continue
        attrs = {a.name: a for a in node.attribute}
        pads = list(attrs["pads"].ints) if "pads" in attrs else []
        auto = attrs["auto_pad"].s if "auto_pad" in attrs else b"NOTSET"
        if any(pads) or auto not in (b"NOTSET", b"VALID") or "count_include_pad" not in attrs:
            continue
        if attrs["count_include_pad"].i == 0:
            attrs["count_include_pad"].i = 1
            count += 1
    return count


def simplify(model: onnx.ModelProto) -> onnx.ModelProto:
    """onnx-simplifier in a child process: its extension crashes a process that has already
    loaded TensorFlow's or ONNX Runtime's copy of protobuf (onnx2tf runs it the same way)."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx"
        onnx.save(model, str(src))
        r = subprocess.run([sys.executable, "-m", "onnxsim", str(src), str(dst)], capture_output=True, text=True)
        if r.returncode != 0 or not dst.is_file():
            raise ImportFailedError(f"onnx-simplifier failed: {(r.stderr or r.stdout)[-2000:]}")
        return onnx.load(str(dst))


def prepare(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict]:
    """The graph edits of the module docstring, in order; returns the model and what was done."""
    softmax = cut_softmax(model)
    channels, height = fix_batch(model)
    model = simplify(model)
    reshapes = batch_one_reshapes(model)
    gelus = fuse_ready_gelu(model)
    pools = plain_average_pools(model)
    onnx.checker.check_model(model)
    return model, {"softmax_cut": softmax, "channels": channels, "height": height,
                   "reshapes_batch1": reshapes, "gelu_chains": gelus, "average_pools_unmasked": pools}


def saved_model(model: onnx.ModelProto, workdir: Path) -> Path:
    """onnx2tf: ONNX (NCHW) → TensorFlow SavedModel (NHWC)."""
    import onnx2tf

    out, log = workdir / "saved_model", workdir / "onnx2tf.log"
    with contextlib.chdir(workdir), log.open("w") as f, contextlib.redirect_stdout(f):
        try:
            onnx2tf.convert(onnx_graph=model, output_folder_path=str(out), output_signaturedefs=True,
                            not_use_onnxsim=True, non_verbose=True)
        except Exception as exc:
            f.flush()
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            raise ImportFailedError(f"onnx2tf failed: {exc}\n{tail}") from exc
    if not (out / "saved_model.pb").is_file():
        raise ImportFailedError("onnx2tf wrote no SavedModel")
    return out


def calibration_lines(count: int, height: int, seed: int = 0) -> list[np.ndarray]:
    """Rendered training lines (never the dev set), normalised as the runtime does."""
    from edge_ocr.recognition.charset import Charset
    from toolchain.synth.corpus import Corpus
    from toolchain.synth.render import LineRenderer

    corpus = Corpus.load("train", Charset.load(Path("models/charset_zh_en.txt")))
    renderer = LineRenderer("train", corpus, seed, height=height, max_width=height * 16)
    return [renderer.sample()[0] for _ in range(count)]


def input_tensor(line: np.ndarray, channels: int, width: int) -> np.ndarray:
    """A normalised grey line (H, W) in 0..255 → (1, H, ``width``, ``channels``) float32 as the
    runtime feeds an imported PaddleOCR-style model (:func:`edge_ocr.recognition.preprocess.input_tensor`)."""
    from edge_ocr.recognition.preprocess import input_tensor as runtime_input

    return runtime_input([line], width, channels, NORMALISATION["scale"], NORMALISATION["offset"])


def model_inputs(lines: list[np.ndarray], channels: int,
                 width_for: Callable[[int], int]) -> Callable[[], Iterator[list[np.ndarray]]]:
    """The inputs the runtime would give the model for ``lines``, each padded to ``width_for`` its
    width: a representative dataset for the converter."""

    def gen() -> Iterator[list[np.ndarray]]:
        for line in lines:
            yield [input_tensor(line, channels, width_for(line.shape[1]))]

    return gen


# Op types left in float32 by default: what measured worst in int8 on PP-OCRv6 (full int8: real-line
# CER 0.135 against 0.044 in float; this list: 0.050-0.054 on every runtime and kernel set).
FLOAT_OPS = ("MEAN", "RSQRT", "BATCH_MATMUL", "SOFTMAX", "GELU", "MUL", "ADD", "SUB", "LOGISTIC", "HARD_SWISH",
             "DEPTHWISE_CONV_2D")


def to_tflite(saved: Path, calib: Callable | None, probe: Callable | None = None,
              float_ops: tuple[str, ...] = ()) -> bytes:
    """Float TFLite, or int8 (int8 in/out) with ``float_ops`` op types left in float32.

    ``probe`` (a few lines at one width) is what TFLite's quantisation debugger needs to build
    the selectively quantised model; calibration itself uses ``calib`` at every width.
    """
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    if calib is None:
        return conv.convert()
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = calib
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    if not float_ops:
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        return conv.convert()
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=list(float_ops))
    debugger = tf.lite.experimental.QuantizationDebugger(converter=conv, debug_dataset=probe, debug_options=options)
    return debugger.get_nondebug_quantized_model()


def time_downsample(tflite: bytes, channels: int, height: int) -> int:
    """Input width per output frame, measured by running the float model at two widths."""
    import tensorflow as tf

    frames = []
    for width in (320, 640):
        it = tf.lite.Interpreter(model_content=tflite)
        idx = it.get_input_details()[0]["index"]
        it.resize_tensor_input(idx, [1, height, width, channels])
        it.allocate_tensors()
        it.set_tensor(idx, np.zeros((1, height, width, channels), np.float32))
        it.invoke()
        frames.append(it.get_tensor(it.get_output_details()[0]["index"]).shape[1])
    if frames[1] == frames[0]:
        raise ImportFailedError("the converted model's output length does not follow its input width")
    return 320 // frames[0]


def main() -> None:
    ap = import_parser(__doc__, "NAME_float/int8.tflite, NAME.charset.txt")
    ap.add_argument("--charset", type=Path, default=None, help="charset file (default: the ONNX metadata)")
    ap.add_argument("--keep", choices=("all", "zh_en"), default="all",
                    help="zh_en: only the classes a Chinese/English classroom writes (classroom_symbol)")
    ap.add_argument("--calib", type=int, default=300, help="rendered calibration lines")
    ap.add_argument("--float-ops", default=",".join(FLOAT_OPS),
                    help="op types left in float32 ('' for full int8; the default measured best, see MODEL_CARD)")
    ap.add_argument("--float-out", type=Path, default=None,
                    help="also write NAME_float.tflite (+ contract, charset) here, for the parity report; "
                         "it is over 20 MB, so not into models/")
    a = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    path, description = resolve(a.onnx)
    model = onnx.load(str(path))
    symbols = a.charset.read_text(encoding="utf-8").rstrip("\n").split("\n") if a.charset else \
        charset_from_metadata(model)
    classes = model.graph.output[0].type.tensor_type.shape.dim[-1].dim_value
    if classes and classes != len(symbols) + 1:
        raise ImportFailedError(f"model emits {classes} classes, charset has {len(symbols)} symbols + blank")
    model, edits = prepare(model)
    keep = None
    if a.keep == "zh_en":
        kept = [i for i, s in enumerate(symbols) if classroom_symbol(s)]
        keep = [0] + [i + 1 for i in kept]
        edits["classes_kept"] = f"{len(keep)} of {len(symbols) + 1} (zh_en)"
        symbols = [symbols[i] for i in kept]
    print(f"{path.name}: {edits}", flush=True)
    charset_name = f"{a.name}.charset.txt"
    for folder in {a.out, a.float_out or a.out}:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / charset_name).write_text("\n".join(symbols) + "\n", encoding="utf-8")

    from toolchain.crnn.export import audit, write_contract

    with tempfile.TemporaryDirectory() as tmp:
        saved = saved_model(model, Path(tmp))
        float_bytes = to_tflite(saved, None)
        channels, height = edits["channels"], edits["height"]
        stride = time_downsample(float_bytes, channels, height)
        lines = calibration_lines(a.calib, height, seed=random.Random(a.name).randrange(1 << 30))
        float_ops = tuple(o for o in a.float_ops.split(",") if o)
        width = WidthPolicy("dynamic", multiple=stride).width_for  # as the contract below says
        int8_bytes = to_tflite(saved, model_inputs(lines, channels, width),
                               model_inputs(lines[:4], channels, lambda _: 480), float_ops)
    if keep is not None:
        float_bytes, int8_bytes = keep_classes(float_bytes, keep), keep_classes(int8_bytes, keep)
    provenance = {"source": description, "onnx_sha256": _sha256(path), "graph_edits": edits,
                  "converted_with": f"onnx2tf {_dist_version('onnx2tf')}, tensorflow {_dist_version('tensorflow-cpu')}",
                  "calibration": f"{a.calib} rendered training lines (toolchain.synth.render), never the dev set",
                  "float_ops": list(float_ops),
                  **({"licence": PADDLE["licence"], "upstream": PADDLE["source"]} if a.onnx in KNOWN else {})}
    label = ("full-integer int8 (int8 in/out)" if not float_ops else
             "int8 weights; convolutions and fully connected layers in int8, "
             f"{', '.join(float_ops)} in float32; int8 in/out")
    outputs = [(a.out, "int8", int8_bytes, label)]
    if a.float_out:
        outputs.append((a.float_out, "float", float_bytes, "float32"))
    for folder, quant, data, label in outputs:
        tfl = folder / f"{a.name}_{quant}.tflite"
        tfl.write_bytes(data)
        text, summary = audit(tfl)
        tfl.with_suffix(".audit.md").write_text(text, encoding="utf-8")
        write_contract(tfl, charset_name, label, height, channels, stride, NORMALISATION,
                       {**provenance, "audit": summary})
        print(f"{tfl}: {tfl.stat().st_size / 1e6:.2f} MB; float ops: {summary['float_ops'] or 'none'}")


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


if __name__ == "__main__":
    main()
