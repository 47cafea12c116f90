"""Import an ONNX DB text detector (PaddleOCR's PP-OCR det) as TFLite with our detector contract.

    python -m toolchain.onnx_import.detector --onnx ppocrv4_det --name ppocrv4_det --out models

``ppocrv4_det`` / ``ppocrv6_det`` name the detectors inside the ``rapidocr_onnxruntime`` 1.4.4
and ``rapidocr`` 3.10.0 wheels (``make bench-accuracy`` installs them).

The detector gets a fixed input (TFLite's transposed convolutions bake their output size, so a
dynamic-size model fails at the second size; the runtime tiles larger images, see
``edge_ocr.vision.detector``). Graph edits, each found by a failure:

1. batch 1 and the fixed input size, then onnx-simplifier (as for the recognisers);
2. single-element Mul/Add constants (PP-LCNetV3's learnable affine after each activation,
   shape [1]) become scalars: otherwise onnx2tf brackets every one with two TRANSPOSEs
   (53 in the v4 detector) and turns the depthwise convolutions into grouped ones;
3. the recognisers' GELU and AveragePool edits (``toolchain.onnx_import.recognizer``), for PP-OCRv6's detector.

Then the TFLite converter writes float and a quantised model (``--quant``): ``dynamic``
(int8 weights, float activations) or ``int8`` (full integer, calibrated on real photos from
``--calib-dir``, never the dev set). Both get a contract, an op audit and provenance;
``toolchain.bench.pages`` gives the parity report on real pages.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import onnx
from onnx import numpy_helper

from toolchain.bench.peers import package_file
from toolchain.common import import_parser
from toolchain.onnx_import.recognizer import (
    ImportFailedError,
    _dist_version,
    _sha256,
    fuse_ready_gelu,
    plain_average_pools,
    saved_model,
    simplify,
    to_tflite,
)

KNOWN = {
    "ppocrv4_det": ("rapidocr_onnxruntime", "models/ch_PP-OCRv4_det_infer.onnx", "PP-OCRv4 mobile detection"),
    "ppocrv6_det": ("rapidocr", "models/PP-OCRv6_det_small.onnx", "PP-OCRv6 small detection"),
}
# PaddleOCR's detector input: BGR, (x/255 − 0.5) / 0.5 (RapidOCR's configuration for both).
MEAN, STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
# PaddleOCR's thresholds but unclip 1.45 (1.6 upstream) and box_thresh 0.45 (0.5): chosen on the whole
# real dev set at the default size (page CER 0.089 → 0.083, worst board page 0.30 → 0.23; see MODEL_CARD).
POSTPROCESS = {"thresh": 0.3, "box_thresh": 0.45, "unclip_ratio": 1.45}


def resolve(source: str) -> tuple[Path, str]:
    if source in KNOWN:
        package, relative, name = KNOWN[source]
        return package_file(package, relative), f"{name} ({relative} from the {package} {_dist_version(package)} wheel)"
    path = Path(source)
    if not path.is_file():
        raise ImportFailedError(f"{source}: no such file (or use one of {sorted(KNOWN)})")
    return path, path.name


def fix_input(model: onnx.ModelProto, height: int, width: int) -> None:
    graph = model.graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise ImportFailedError("expected a detector with one input and one output (a probability map)")
    dims = graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4 or dims[1].dim_value != 3:
        raise ImportFailedError("expected an NCHW input with 3 channels")
    for d, v in zip(dims, (1, 3, height, width)):
        d.ClearField("dim_param")
        d.dim_value = v


def scalar_constants(model: onnx.ModelProto) -> int:
    """Single-element Mul/Add initialisers of shape [1] → rank-0 scalars (see the docstring)."""
    graph, count = model.graph, 0
    inits = {i.name: i for i in graph.initializer}
    for node in graph.node:
        if node.op_type not in ("Mul", "Add"):
            continue
        for k, name in enumerate(node.input):
            if name in inits and tuple(inits[name].dims) == (1,):
                scalar = f"{name}_scalar"
                if scalar not in inits:
                    inits[scalar] = numpy_helper.from_array(numpy_helper.to_array(inits[name]).reshape(()), scalar)
                    graph.initializer.append(inits[scalar])
                node.input[k] = scalar
                count += 1
    return count


PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")  # the photos calibration and distillation read


def normalise(bgr: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 BGR → float32, the detector's (x/255 − MEAN)/STD."""
    return (bgr.astype(np.float32) / 255 - np.float32(MEAN)) / np.float32(STD)


def letterbox(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """A BGR image scaled to fit (height, width), normalised, padded with 0 (the mean colour)."""
    h, w = image.shape[:2]
    s = min(width / w, height / h)
    im = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    x = np.zeros((height, width, 3), np.float32)
    x[: im.shape[0], : im.shape[1]] = normalise(im)
    return x


def calibration(directory: Path, count: int, height: int, width: int) -> Callable[[], Iterator[list[np.ndarray]]]:
    files = sorted(p for p in directory.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES)
    if not files:
        raise ImportFailedError(f"no calibration photos in {directory}")
    step = max(1, len(files) // count)
    chosen = files[::step][:count]

    def gen() -> Iterator[list[np.ndarray]]:
        for f in chosen:
            image = cv2.imread(str(f))
            if image is not None:
                yield [letterbox(image, height, width)[None]]

    return gen


def audit_and_contract(tflite: Path, quant: str, height: int, width: int, provenance: dict,
                       postprocess: dict | None = None) -> dict:
    from toolchain.crnn.export import audit

    text, summary = audit(tflite)
    tflite.with_suffix(".audit.md").write_text(text, encoding="utf-8")
    path = tflite.with_suffix(".json")
    old = json.loads(path.read_text()) if path.exists() else {}
    contract = {
        "id": tflite.stem, "kind": "detector", "model": tflite.name, "quantization": quant,
        "input": {"height": height, "width": width, "colour_order": "BGR", "max_side": width,
                  "normalisation": {"mean": list(MEAN), "std": list(STD),
                                    "note": "(x/255 - mean)/std per channel, BGR; padding is 0 (the mean colour)"}},
        "output": {"kind": "probability", "stride": 1, "note": "text probability per input pixel (DB)"},
        "postprocess": postprocess or POSTPROCESS, "metrics": old.get("metrics", {}),
        "provenance": {**provenance, "audit": summary},
    }
    path.write_text(json.dumps(contract, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return summary


def main() -> None:
    ap = import_parser(__doc__, "NAME_int8.tflite (+ .json, .audit.md)")
    ap.add_argument("--float-out", type=Path, default=None, help="also write NAME_float.tflite here")
    ap.add_argument("--size", default="448x800", help="fixed input, HxW, multiples of 32 (a 16:9 frame at 796×448)")
    ap.add_argument("--quant", choices=("dynamic", "int8"), default="dynamic",
                    help="dynamic: int8 weights, float activations (measured fastest, see MODEL_CARD); "
                         "int8: full integer")
    ap.add_argument("--calib-dir", type=Path, default=Path("../shared/unlabelled"),
                    help="photos for int8 calibration (never the dev set)")
    ap.add_argument("--calib", type=int, default=40)
    a = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    height, width = (int(v) for v in a.size.lower().split("x"))
    if height % 32 or width % 32:
        raise ImportFailedError(f"--size {a.size}: both sides must be multiples of 32")
    path, description = resolve(a.onnx)
    model = onnx.load(str(path))
    fix_input(model, height, width)
    model = simplify(model)
    edits = {"input": [1, 3, height, width], "scalar_constants": scalar_constants(model),
             "gelu_chains": fuse_ready_gelu(model), "average_pools_unmasked": plain_average_pools(model)}
    onnx.checker.check_model(model)
    print(f"{path.name}: {edits}", flush=True)
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        # onnx2tf downloads this sample (for its own checks) unless it is already there.
        np.save(Path(tmp) / "calibration_image_sample_data_20x128x128x3_float32.npy",
                np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32))
        saved = saved_model(model, Path(tmp))
        float_bytes = to_tflite(saved, None)
        if a.quant == "int8":
            calib = calibration(a.calib_dir, a.calib, height, width)
            quant_bytes = to_tflite(saved, calib, calib, ())
            label = f"full-integer int8 (int8 in/out), calibrated on {a.calib} photos of {a.calib_dir.name}/"
        else:
            conv = tf.lite.TFLiteConverter.from_saved_model(str(saved))
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            with contextlib.redirect_stdout(None):
                quant_bytes = conv.convert()
            label = "dynamic range: int8 weights, float32 activations (no calibration)"
    provenance = {"source": description, "onnx_sha256": _sha256(path), "graph_edits": edits,
                  "converted_with": f"onnx2tf {_dist_version('onnx2tf')}, tensorflow {_dist_version('tensorflow-cpu')}",
                  "licence": "Apache-2.0", "upstream": "PaddlePaddle/PaddleOCR (https://github.com/PaddlePaddle/PaddleOCR)"}
    a.out.mkdir(parents=True, exist_ok=True)
    outputs = [(a.out / f"{a.name}_int8.tflite", quant_bytes, label)]
    if a.float_out:
        a.float_out.mkdir(parents=True, exist_ok=True)
        outputs.append((a.float_out / f"{a.name}_float.tflite", float_bytes, "float32"))
    for tfl, data, lab in outputs:
        tfl.write_bytes(data)
        summary = audit_and_contract(tfl, lab, height, width, provenance)
        print(f"{tfl}: {tfl.stat().st_size / 1e6:.2f} MB; {sum(summary['ops'].values())} ops", flush=True)


if __name__ == "__main__":
    main()
