"""Score models on a rendered split: CER and exact-line accuracy, float vs int8 parity.

    python -m toolchain.bench.evaluate --split data/test \
        --models models/crnn_zh_en_float.tflite models/crnn_zh_en_int8.tflite

TFLite models run through ``edge_ocr.recognition.recognizer`` (the device's code path, both runtimes
when installed). ``--keras-run`` adds the float Keras model the export came from.
Writes a Markdown parity report and stores the figures in each model's contract.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edge_ocr import options
from edge_ocr.labels import read_labels
from edge_ocr.model.interpreter import available_runtimes
from edge_ocr.recognition.recognizer import Recognizer
from toolchain.scoring import score, strip_punct
from toolchain.synth.dataset import load_split


def eval_tflite(path: Path, split: Path, runtime: str, limit: int | None, decoder: str = "greedy",
                lm: Path | None = None, xnnpack: bool = True) -> dict:
    images, widths, labels = load_split(split)
    n = len(labels) if not limit else min(limit, len(labels))
    rec = Recognizer(path, num_threads=1, runtime=runtime, decoder=decoder, lm=lm, xnnpack=xnnpack)
    hyps, ms = [], []
    for i in tqdm(range(n), desc=f"{path.name} [{runtime}]", unit="line", mininterval=5):
        r = rec.recognize([np.asarray(images[i, :, : widths[i]])])[0]
        hyps.append(r.text)
        ms.append(r.ms)
    out = score(labels[:n], hyps)
    out["median_ms_per_line"] = float(np.median(ms))
    out["hyps"] = hyps
    return out


def eval_devset(path: Path, devset: Path, runtime: str, decoder: str = "greedy", lm: Path | None = None) -> dict:
    """CER on the real line images of ``devset/labels.tsv``, overall and per category.

    Also reports a punctuation-insensitive CER, as the dev set's labelling notes suggest.
    """
    from edge_ocr.imageio import read_image

    rec = Recognizer(path, num_threads=1, runtime=runtime, decoder=decoder, lm=lm)
    rows = read_labels(devset, "lines/")
    refs, hyps, cats = [], [], []
    for r in tqdm(rows, desc=f"devset {path.name} [{runtime}]", unit="line", mininterval=5):
        refs.append(r["text"])
        hyps.append(rec.recognize([read_image(devset / r["file"])])[0].text)
        cats.append(r["category"])
    out = {"all": score(refs, hyps),
           "all_no_punct": score([strip_punct(t) for t in refs], [strip_punct(t) for t in hyps])}
    for cat in sorted(set(cats)):
        idx = [i for i, c in enumerate(cats) if c == cat]
        out[cat] = score([refs[i] for i in idx], [hyps[i] for i in idx])
    return out


def eval_keras(run: Path, split: Path, limit: int | None) -> dict:
    from edge_ocr.recognition.charset import Charset
    from toolchain.crnn.export import load_trained
    from toolchain.crnn.train import evaluate

    _, model = load_trained(run, batch_size=None)
    charset = Charset.load(json.loads((run / "config.json").read_text())["charset"])
    images, widths, labels = load_split(split)
    return evaluate(model, images, widths, labels, charset, limit=limit)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", type=Path, default=Path("data/test"))
    ap.add_argument("--models", type=Path, nargs="+", required=True)
    ap.add_argument("--keras-run", type=Path, default=None)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--report", type=Path, default=None, help="Markdown parity report")
    ap.add_argument("--store", action="store_true", help="write the figures into each model's contract")
    ap.add_argument("--devset", type=Path, default=None, help="also score real line images (labels.tsv)")
    ap.add_argument("--decoder", choices=options.DECODERS, default="greedy")
    ap.add_argument("--lm", type=Path, default=None, help="character LM for the beam decoder")
    ap.add_argument("--runtimes", nargs="*", default=None, help="default: every installed runtime")
    a = ap.parse_args()
    rows = []
    if a.keras_run:
        t = time.time()
        # TensorFlow and tflite-runtime cannot share a process (tflite-runtime then fails to
        # load models with "vector::reserve"), so the Keras model is scored in a child process.
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(1, mp_context=ctx) as pool:
            m = pool.submit(eval_keras, a.keras_run, a.split, a.limit or None).result()
        rows.append(("keras float (training graph)", "tensorflow", m))
        print(f"keras float: CER {m['cer']:.4f} line acc {m['line_acc']:.4f} ({time.time() - t:.0f} s)")
    results: dict[str, dict] = {}
    for path in a.models:
        runtimes = a.runtimes or available_runtimes()
        configs = [(rt, True) for rt in runtimes] + [(rt + " builtin", False) for rt in runtimes]
        for name, xnnpack in configs:
            rt = name.split()[0]
            m = eval_tflite(path, a.split, rt, a.limit or None, a.decoder, a.lm, xnnpack)
            rows.append((path.name, name, m))
            results.setdefault(path.name, {})[name] = m
            print(f"{path.name} [{name}]: CER {m['cer']:.4f} line acc {m['line_acc']:.4f} "
                  f"median {m['median_ms_per_line']:.1f} ms/line")
    devsets: dict[str, dict] = {}
    if a.devset:
        for path in a.models:
            d = eval_devset(path, a.devset, available_runtimes()[0], a.decoder, a.lm)
            devsets[path.name] = d
            print(f"{path.name} devset: " + ", ".join(f"{k} CER {v['cer']:.3f} ({v['lines']})" for k, v in d.items()))
    agreement: dict[str, dict[str, float]] = {}
    for name, per_rt in results.items():
        ref = per_rt[next(k for k in per_rt if k.endswith("builtin"))]["hyps"]
        for rt, m in per_rt.items():
            same = sum(x == y for x, y in zip(m["hyps"], ref)) / len(ref)
            agreement.setdefault(name, {})[rt] = same
            print(f"{name} [{rt}]: same text as the builtin kernels on {same:.2%} of lines")
    if a.report:
        lines = [f"# Evaluation on `{a.split}`", "",
                 "CER = edits / reference characters, whitespace removed; line acc = exact match. "
                 f"Median ms/line: 1 thread, this host, {a.decoder} decoding{' + LM' if a.lm else ''}.", "",
                 "| model | runtime (kernels) | lines | CER | line acc | median ms/line | same text as builtin |",
                 "|---|---|---|---|---|---|---|"]
        for name, rt, m in rows:
            ms = f"{m['median_ms_per_line']:.1f}" if "median_ms_per_line" in m else "–"
            same = agreement.get(name, {}).get(rt)
            same_s = "–" if same is None else f"{same:.2%}"
            if rt == "tensorflow":
                kernels = rt
            elif rt.endswith(" builtin"):
                kernels = rt.replace(" builtin", " (builtin kernels)")
            else:
                kernels = f"{rt} (default delegates)"
            lines.append(f"| {name} | {kernels} | {m['lines']} | {m['cer']:.4f} | {m['line_acc']:.4f} | {ms} "
                         f"| {same_s} |")
        if devsets:
            cats = list(next(iter(devsets.values())))
            lines += ["", f"## Real lines: `{a.devset}` (CER; lines in brackets)", "",
                      "| model | " + " | ".join(cats) + " |", "|---|" + "---|" * len(cats)]
            for name, d in devsets.items():
                lines.append(f"| {name} | " + " | ".join(f"{d[c]['cer']:.3f} ({d[c]['lines']})" for c in cats) + " |")
        a.report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if a.store:
        for path in a.models:
            contract = path.with_suffix(".json")
            doc = json.loads(contract.read_text())
            per_rt = results[path.name]
            first = next(iter(per_rt.values()))
            doc["metrics"] = {
                "synthetic_test": {"split": str(a.split), "lines": first["lines"], "chars": first["chars"],
                                   "cer": round(first["cer"], 4), "line_acc": round(first["line_acc"], 4)},
                "cer_by_runtime": {rt: round(m["cer"], 4) for rt, m in per_rt.items()},
                "same_text_as_builtin_kernels": {rt: round(v, 4) for rt, v in agreement[path.name].items()},
                "median_ms_per_line_1_thread": {rt: round(m["median_ms_per_line"], 2) for rt, m in per_rt.items()},
            }
            if path.name in devsets:
                doc["metrics"]["devset_real_lines"] = {k: {"cer": round(v["cer"], 4), "lines": v["lines"]}
                                                       for k, v in devsets[path.name].items()}
            contract.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
