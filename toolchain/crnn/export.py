"""Export a trained CRNN to TFLite (float and full-integer int8) with its contract and audit.

    python -m toolchain.crnn.export --run runs/crnn --out models --name crnn_zh_en
    python -m toolchain.crnn.export --weights models/crnn_zh_en_float.weights.h5 \
        --config models/crnn_zh_en_float.config.json --out models     # from the shipped float model

Writes ``<name>_int8.tflite`` + ``.json`` (the contract), ``<name>_float.tflite`` + ``.json``
and ``<name>_int8.audit.md``: every op with its tensor types, so anything left in float is
visible. Calibration uses rendered training lines of many widths.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np
import tensorflow as tf

from edge_ocr.recognition.preprocess import input_tensor
from toolchain.crnn.model import CRNNConfig, build_crnn
from toolchain.synth.dataset import load_split

FLOAT_OK = {"DEQUANTIZE"}


def load_trained(run: Path, weights: Path | None = None, batch_size: int | None = 1, config: Path | None = None):
    """The CRNN of ``run`` built for export (fixed batch so the LSTM fuses), weights loaded."""
    cfg = CRNNConfig.from_dict(json.loads((config or run / "config.json").read_text())["model"])
    model = build_crnn(cfg, batch_size=batch_size)
    latest = tf.train.latest_checkpoint(str(run / "ckpt"))
    final = run / "final.weights.h5"
    newer = latest and (not final.exists() or Path(latest + ".index").stat().st_mtime > final.stat().st_mtime)
    if weights is None and newer:
        # A run still going (or stopped by a kill) has a checkpoint newer than its last final weights.
        tf.train.Checkpoint(model=model).restore(latest).expect_partial()
        print(f"weights from checkpoint {latest}", flush=True)
        return cfg, model
    weights = weights or final
    if not weights.exists():
        raise SystemExit(f"{run}: no final.weights.h5 and no checkpoint")
    model.load_weights(str(weights))
    return cfg, model


def representative(data: Path, count: int, seed: int = 0):
    images, widths, _ = load_split(data)
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(widths), min(count, len(widths)), replace=False)

    def gen():
        for i in idx:
            w = int(-(-max(32, int(widths[i])) // 4) * 4)
            yield [input_tensor([images[i, :, :w].astype(np.float32)], w, 1, 1.0, 0.0)]

    return gen


def convert(model, int8: bool, calib=None) -> bytes:
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = calib
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return conv.convert()


def audit(tflite_path: Path) -> tuple[str, dict]:
    """Markdown table of every op and its tensor types, plus a summary dict."""
    interp = tf.lite.Interpreter(model_path=str(tflite_path))
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    rows, float_ops, kinds = [], [], Counter()

    def types(indices) -> str:
        return ", ".join(np.dtype(tensors[i]["dtype"]).name for i in indices if i >= 0 and i in tensors)

    for op in interp._get_ops_details():
        name = op["op_name"]
        kinds[name] += 1
        ins, outs = types(op["inputs"]), types(op["outputs"])
        rows.append(f"| {op['index']} | {name} | {ins} | {outs} |")
        if "float32" in ins + outs and name not in FLOAT_OK:
            float_ops.append(name)
    lines = [
        f"# Op audit: {tflite_path.name}",
        "",
        f"{sum(kinds.values())} ops: " + ", ".join(f"{k} ×{v}" for k, v in sorted(kinds.items())),
        "",
        "Ops touching float32 tensors: " + (", ".join(sorted(set(float_ops))) if float_ops else "none"),
        "",
        "| # | op | input types | output types |",
        "|---|---|---|---|",
        *rows,
    ]
    return "\n".join(lines) + "\n", {"ops": dict(kinds), "float_ops": sorted(set(float_ops))}


CRNN_NORMALISATION = {"scale": 1.0, "offset": 0.0, "polarity": "dark_on_light",
                      "note": "pixels 0..255 after edge_ocr.recognition.preprocess.normalize_line; the model rescales"}


def write_contract(tflite: Path, charset: str, quant: str, height: int, channels: int, stride: int,
                   normalisation: dict, provenance: dict) -> None:
    """The contract beside ``tflite``; the figures already measured for it (``metrics``) are kept."""
    path = tflite.with_suffix(".json")
    old = json.loads(path.read_text()) if path.exists() else {}
    contract = {
        "id": path.stem,
        "model": tflite.name,
        "charset": charset,
        "quantization": quant,
        "input": {
            "height": height,
            "channels": channels,
            "width_policy": {"kind": "dynamic", "multiple": stride, "min": 32, "max": 1600},
            "normalisation": normalisation,
        },
        "output": {"blank_index": 0, "time_downsample": stride, "kind": "logits"},
        "metrics": old.get("metrics", {}),
        "provenance": provenance,
    }
    path.write_text(json.dumps(contract, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, default=Path("runs/crnn"))
    ap.add_argument("--weights", type=Path, default=None, help="float weights (default: the run's newest)")
    ap.add_argument("--config", type=Path, default=None, help="model config JSON (default: RUN/config.json)")
    ap.add_argument("--data", type=Path, default=Path("data/train"), help="calibration lines")
    ap.add_argument("--calib", type=int, default=300)
    ap.add_argument("--out", type=Path, default=Path("models"))
    ap.add_argument("--name", default="crnn_zh_en")
    ap.add_argument("--charset", default="charset_zh_en.txt", help="charset file name inside --out")
    ap.add_argument("--float-only", action="store_true",
                    help="only the float TFLite (no calibration data needed; the shipped int8 stays as it is)")
    a = ap.parse_args()
    cfg, model = load_trained(a.run, a.weights, config=a.config)
    a.out.mkdir(parents=True, exist_ok=True)
    for quant in ("float",) if a.float_only else ("float", "int8"):
        path = a.out / f"{a.name}_{quant}.tflite"
        path.write_bytes(convert(model, quant == "int8", representative(a.data, a.calib) if quant == "int8" else None))
        text, summary = audit(path)
        path.with_suffix(".audit.md").write_text(text, encoding="utf-8")
        write_contract(path, a.charset,
                       "full-integer int8 (int8 in/out, int16 LSTM cell state)" if quant == "int8" else "float32",
                       cfg.height, 1, cfg.time_downsample, CRNN_NORMALISATION,
                       {"trained_run": str(a.run), "audit": summary})
        print(f"{path}: {path.stat().st_size / 1e6:.2f} MB; float ops: {summary['float_ops'] or 'none'}")


if __name__ == "__main__":
    main()
