"""The CRNN student with its backbone learning too: PyTorch training on a GPU machine, packing and
int8 export here (issue 30).

Why PyTorch: the GPU machine this runs on has PyTorch and no TensorFlow. The model is the same
graph as :mod:`toolchain.crnn.student`: the teacher's backbone executed node by node from its
prepared ONNX graph (:class:`OnnxBackbone`, the convolutions' weights as parameters), then the
student's head (:class:`TorchHead`, the Keras head's layers). Training is quantisation-aware:
every backbone tensor the full-int8 TFLite model stores as int8 is fake-quantised the way the
converter quantises it (per-channel symmetric weights, per-tensor affine activations over the
observed range), so the weights learn what the device computes. The trained weights go back into
the ONNX graph's initialisers and the head's ``.npz``, and the existing export
(:func:`toolchain.crnn.student.student`, Keras rebuild, full-int8 converter, contract and audit)
makes the model.

Steps (``make student-pack``, ``student-joint``, ``student-joint-export``):

    python -m toolchain.crnn.joint pack    --out build/joint                  # here: lines + the teacher's targets
    python -m toolchain.crnn.joint train   --pack build/joint/pack --out OUT  # torch (a GPU); resumes OUT/last.npz
    python -m toolchain.crnn.joint export  --weights OUT/last.npz --models DIR  # here: full-int8 TFLite
    python -m toolchain.crnn.joint compare --compare DIR/*_int8.tflite ...    # dev lines, by halves

Of ``../shared/classroom`` only the learning lectures are read (``toolchain/bench/classroom/split.json``,
split by lecture, never by frame); the dev set is never read.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import time
from pathlib import Path

import numpy as np

TOP_K = 8  # the teacher's classes kept per frame, as toolchain.crnn.student's cache keeps them
WEBP_QUALITY = 70  # lossy WebP: 2.2 KB for a 340-px real line (JPEG at 80: 3.9 KB); the pack travels


def _encode(line: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".webp", np.clip(line, 0, 255).astype(np.uint8), [cv2.IMWRITE_WEBP_QUALITY, WEBP_QUALITY])
    if not ok:
        raise ValueError("WebP encoding failed")
    return buf.tobytes()


def _decode(data: bytes) -> np.ndarray:
    import cv2

    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)


def _write_part(path: Path, items: list[tuple[np.ndarray, str, int]], kind: int, teacher) -> None:
    """Lines (normalised, 48 × W) as WebP with the teacher's top classes per frame, read from the
    decoded WebP (what training will see); ``kind`` 0 rendered, 1 unlabelled photos, 2 classroom."""
    from tqdm import tqdm

    blobs, widths, texts, groups, ids, probs = [], [], [], [], [], []
    for line, text, group in tqdm(items, desc=path.name, unit="line", mininterval=30):
        blob = _encode(line)
        seen = _decode(blob).astype(np.float32)
        _, _, i, p = teacher.frames(seen)
        if len(i) != seen.shape[1] // 8:
            raise SystemExit(f"{path}: {len(i)} teacher frames for a {seen.shape[1]}-px line")
        blobs.append(np.frombuffer(blob, np.uint8))
        widths.append(seen.shape[1])
        texts.append(text)
        groups.append(group)
        ids.append(i)
        probs.append(p)
    np.savez(path.with_suffix(".tmp.npz"), image=np.concatenate(blobs),
             sizes=np.array([len(b) for b in blobs], np.int64), widths=np.array(widths, np.int32),
             texts=np.array(texts), groups=np.array(groups, np.int32), kind=np.full(len(blobs), kind, np.int8),
             ids=np.concatenate(ids), probs=np.concatenate(probs))
    path.with_suffix(".tmp.npz").rename(path)


def pack(args: argparse.Namespace) -> None:
    """Parts in ``--out`` (each resumable): real crops of the unlabelled photos and of the learning
    lectures, rendered train-split lines (``--rendered``, in parts of 1,000) and 300 rendered
    validation lines; then ``pack/lines.npz`` (all of them) and ``pack/backbone.onnx`` (the
    teacher's backbone, the weights training starts from, in float16)."""
    import tempfile

    from toolchain.bench.classroom import frames
    from toolchain.crnn.student import HandRenderer, Teacher, real_lines

    args.out.mkdir(parents=True, exist_ok=True)
    teacher = Teacher(args.threads)
    for name, kind, source in (("real_unlabelled", 1, args.photos), ("real_classroom", 2, None)):
        path = args.out / f"{name}.npz"
        if path.exists():
            continue
        with tempfile.TemporaryDirectory() as tmp:
            if source is None:
                source = Path(tmp)
                for f in frames(args.classroom, use="learn"):
                    (source / f.name).symlink_to(f.resolve())
            found = real_lines(source)
        print(f"{len(found)} real lines from {source if kind == 1 else 'the learning lectures'}", flush=True)
        _write_part(path, [(line, "", g) for g, line in found], kind, teacher)
    parts = [("rendered_val", 300, 99_999)] + [(f"rendered_{c:02d}", 1000, c) for c in range(args.rendered // 1000)]
    for name, count, seed in parts:
        path = args.out / f"{name}.npz"
        if path.exists():
            continue
        renderer = HandRenderer(args.seed + 1000 + seed)
        _write_part(path, [(*renderer.sample(), -1) for _ in range(count)], 0, teacher)
    build_pack(args.out, [p for p, _, _ in parts])


def build_pack(out: Path, rendered: list[str]) -> None:
    """``out/pack/lines.npz``: the parts joined, ``split`` 1 for validation lines (the rendered
    validation part and the real lines of every 10th photo), and ``backbone.onnx``."""
    import onnx

    from edge_ocr.recognition.charset import Charset
    from toolchain.crnn.student import CHARSET, teacher_graph

    names = ["real_unlabelled", "real_classroom", *rendered]
    parts = [dict(np.load(out / f"{n}.npz")) for n in names]
    val = [np.full(len(p["sizes"]), n == "rendered_val") for n, p in zip(names, parts)]
    val[0] = parts[0]["groups"] % 10 == 0
    joined = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    joined["split"] = np.concatenate(val).astype(np.int8)
    charset = Charset.load(CHARSET)
    labels = [charset.encode(str(t)) for t in joined["texts"]]
    joined["labels"] = np.array([c for v in labels for c in v], np.int16)
    joined["label_sizes"] = np.array([len(v) for v in labels], np.int32)
    (out / "pack").mkdir(exist_ok=True)
    np.savez_compressed(out / "pack" / "lines.npz", **joined)
    model, _, features = teacher_graph()
    onnx.save(model, str(out / "teacher.onnx"))
    onnx.utils.extract_model(str(out / "teacher.onnx"), str(out / "backbone.onnx"), [model.graph.input[0].name],
                             [features])
    backbone = onnx.load(str(out / "backbone.onnx"))
    for i, init in enumerate(backbone.graph.initializer):  # weights in float16 travel in half the bytes; training
        arr = onnx.numpy_helper.to_array(init)             # reads float32; scalars (GELU's √2) stay exact
        if arr.dtype == np.float32 and arr.size > 1:
            backbone.graph.initializer[i].CopyFrom(onnx.numpy_helper.from_array(arr.astype(np.float16), init.name))
    onnx.save(backbone, str(out / "pack" / "backbone.onnx"))
    print(f"{len(joined['sizes'])} lines ({int(joined['split'].sum())} for validation), "
          f"{len(joined['ids'])} frames in {out / 'pack'}", flush=True)


# --- the model in PyTorch (runs where TensorFlow is not: no TensorFlow import below) ---------------

HEAD_KERAS = ("neck_b.weight", "neck_b.bias", "neck_c.weight", "neck_c.bias",
              "lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.bias_ih_l0",
              "lstm.weight_ih_l0_reverse", "lstm.weight_hh_l0_reverse", "lstm.bias_ih_l0_reverse",
              "mix.weight", "mix.bias", "neck_a.weight", "neck_a.bias", "classifier.weight", "classifier.bias")
"""The torch head's parameters in the order of the Keras head's ``get_weights()`` (``.head.npz``)."""


def _keras_to_torch(name: str, w: np.ndarray) -> np.ndarray:
    """A Keras head weight in torch layout: dense kernels (in, out) → (out, in); the depthwise
    kernel (7, C, 1) → (C, 1, 7); LSTM kernels (in, 4u) → (4u, in), gates i, f, c, o in both."""
    if name == "neck_c.weight":
        return w[:, :, 0].T[:, None, :]
    return w.T if w.ndim == 2 else w


def _torch_to_keras(name: str, w: np.ndarray) -> np.ndarray:
    if name == "neck_c.weight":
        return w[:, 0, :].T[:, :, None]
    return w.T if w.ndim == 2 else w


def _weight_quant(w, enabled: bool):
    """Per-output-channel symmetric int8 (−127..127), TFLite's for convolutions and dense layers;
    straight through for the gradient."""
    import torch

    if not enabled:
        return w
    scale = torch.clamp(w.detach().abs().flatten(1).amax(1) / 127.0, min=1e-12).float()
    return torch.fake_quantize_per_channel_affine(w, scale, torch.zeros_like(scale, dtype=torch.int32), 0, -127, 127)


def torch_modules():
    """The torch classes, defined on first use (torch is imported only where training runs)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class ActQuant(nn.Module):
        """Per-tensor affine int8 fake quantisation of an activation over its observed range (0
        always inside, as TFLite's converter makes it): the min and max over all batches while
        calibrating (as the converter's calibration), a moving average of each batch's while
        training, frozen when not observing."""

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("lo", torch.zeros(()))
            self.register_buffer("hi", torch.zeros(()))
            self.register_buffer("seen", torch.zeros((), dtype=torch.bool))
            self.enabled, self.observe, self.momentum = False, False, None

        def forward(self, x):
            if self.observe:  # momentum None: the range over everything seen (calibration)
                with torch.no_grad():
                    lo, hi = x.detach().min(), x.detach().max()
                    if self.momentum is None:
                        lo, hi = torch.minimum(self.lo, lo), torch.maximum(self.hi, hi)
                    else:
                        lo, hi = self.lo + self.momentum * (lo - self.lo), self.hi + self.momentum * (hi - self.hi)
                    self.lo.copy_(torch.where(self.seen, lo, x.detach().min()))
                    self.hi.copy_(torch.where(self.seen, hi, x.detach().max()))
                    self.seen.fill_(True)
            if not self.enabled:
                return x
            lo, hi = torch.clamp(self.lo, max=0.0), torch.clamp(self.hi, min=0.0)
            scale = torch.clamp((hi - lo) / 255.0, min=1e-8)
            zero = torch.clamp(torch.round(-128.0 - lo / scale), -128, 127).to(torch.int32)
            return torch.fake_quantize_per_tensor_affine(x, scale.reshape(1).float(), zero.reshape(1), -128, 127)

    class OnnxBackbone(nn.Module):
        """The prepared ONNX backbone executed node by node (NCHW): the convolutions' weights and
        biases are parameters named after their initialisers (``.`` → ``__``); a fake quantiser
        after every tensor TFLite stores in int8 (a convolution followed by its ReLU is one fused
        op; a max pool keeps its input's scale). GELU chains run as one exact GELU, as the Keras
        rebuild and TFLite do."""

        def __init__(self, model) -> None:
            from onnx import helper, numpy_helper

            from toolchain.onnx_import.keras_rebuild import UnsupportedOpError, _gelu_chains

            super().__init__()
            graph = model.graph
            consts = {i.name: numpy_helper.to_array(i).astype(np.float32) for i in graph.initializer}
            for n in graph.node:
                if n.op_type == "Constant":
                    consts[n.output[0]] = numpy_helper.to_array(helper.get_attribute_value(n.attribute[0]))
            nodes = [n for n in graph.node if n.op_type != "Constant"]
            gelu_out, gelu_inner = _gelu_chains(nodes, consts)
            consumers: dict[str, list] = {}
            for n in nodes:
                for i in n.input:
                    consumers.setdefault(i, []).append(n)
            self.params = nn.ParameterDict()
            self.quant = nn.ModuleDict()
            self.input_name, self.output_name = graph.input[0].name, graph.output[0].name
            self.input_quant = ActQuant()
            self.ops: list[tuple] = []
            for node in nodes:
                out = node.output[0]
                if node.name in gelu_inner and out not in gelu_out:
                    continue
                a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
                op = "Gelu" if out in gelu_out else node.op_type
                ins = [gelu_out[out]] if op == "Gelu" else list(node.input)
                spec: dict = {}
                if op == "Conv":
                    for name in node.input[1:]:
                        self.params[name.replace(".", "__")] = nn.Parameter(torch.from_numpy(consts[name].copy()))
                    kernel, strides = list(a["kernel_shape"]), list(a.get("strides", [1, 1]))
                    if a.get("auto_pad", b"NOTSET") == b"SAME_UPPER":
                        pads = [(kernel[0] - 1) // 2, (kernel[1] - 1) // 2, kernel[0] // 2, kernel[1] // 2]
                    else:
                        pads = list(a.get("pads", [0, 0, 0, 0]))
                    spec = {"w": node.input[1].replace(".", "__"), "b": node.input[2].replace(".", "__"),
                            "pad": (pads[1], pads[3], pads[0], pads[2]), "stride": strides, "group": a.get("group", 1)}
                    ins = ins[:1]
                elif op == "HardSigmoid":
                    spec = {"alpha": float(a.get("alpha", 0.2)), "beta": float(a.get("beta", 0.5))}
                elif op in ("Mul", "Add", "Div"):
                    const = [consts.get(i) for i in node.input]
                    if any(c is not None for c in const):
                        c = next(c for c in const if c is not None)
                        spec = {"const": float(np.asarray(c).ravel()[0])}
                        ins = [i for i, c in zip(node.input, const) if c is None]
                elif op == "MaxPool":
                    kernel, strides = list(a["kernel_shape"]), list(a.get("strides", [1, 1]))
                    pads = ([(kernel[0] - 1) // 2, (kernel[1] - 1) // 2, kernel[0] // 2, kernel[1] // 2]
                            if a.get("auto_pad") == b"SAME_UPPER" else list(a.get("pads", [0, 0, 0, 0])))
                    spec = {"kernel": kernel, "stride": strides, "pad": (pads[1], pads[3], pads[0], pads[2])}
                elif op == "AveragePool":
                    spec = {"kernel": list(a["kernel_shape"]), "stride": list(a["strides"])}
                elif op not in ("Relu", "Gelu", "Concat", "ReduceMean"):
                    raise UnsupportedOpError(f"{node.name}: op {op} not translated")
                fused = op == "Conv" and [n.op_type for n in consumers.get(out, [])] == ["Relu"]
                key = f"q{len(self.ops)}"
                if not fused and op != "MaxPool":
                    self.quant[key] = ActQuant()
                self.ops.append((op, ins, out, spec, key))

        def forward(self, x):
            """(B, 3, 48, W) → frames (B, W/8, 384)."""
            t = {self.input_name: self.input_quant(x)}
            for op, ins, out, s, key in self.ops:
                v = [t[i] for i in ins]
                if op == "Conv":
                    w = _weight_quant(self.params[s["w"]], self.input_quant.enabled)
                    y = F.conv2d(F.pad(v[0], s["pad"]), w, self.params[s["b"]], s["stride"], groups=s["group"])
                elif op == "Relu":
                    y = F.relu(v[0])
                elif op == "Gelu":
                    y = F.gelu(v[0])
                elif op == "HardSigmoid":
                    y = torch.clamp(v[0] * s["alpha"] + s["beta"], 0.0, 1.0)
                elif op in ("Mul", "Add", "Div"):
                    other = s["const"] if "const" in s else v[1]
                    y = {"Mul": torch.mul, "Add": torch.add, "Div": torch.div}[op](v[0], other)
                elif op == "MaxPool":
                    y = F.max_pool2d(F.pad(v[0], s["pad"], value=float("-inf")), s["kernel"], s["stride"])
                elif op == "AveragePool":
                    y = F.avg_pool2d(v[0], s["kernel"], s["stride"])
                elif op == "Concat":
                    y = torch.cat(v, 1)
                else:
                    y = v[0].mean((2, 3), keepdim=True)
                if key in self.quant:
                    y = self.quant[key](y)
                t[out] = y
            return t[self.output_name][:, :, 0, :].transpose(1, 2)

        def initialisers(self) -> dict[str, np.ndarray]:
            """The parameters under their ONNX initialiser names (float32)."""
            return {k.replace("__", "."): v.detach().float().cpu().numpy() for k, v in self.params.items()}

    class TorchHead(nn.Module):
        """The Keras head (:func:`toolchain.crnn.student.head`, BiLSTM at W/8) in torch, with fake
        quantisers where the int8 model stores its tensors; the LSTM's insides stay float (TFLite's
        int8 LSTM kernel has its own 16-bit gates and cell state)."""

        def __init__(self, classes: int, lstm: int = 64, dropout: float = 0.1) -> None:
            super().__init__()
            self.neck_a, self.neck_b = nn.Linear(384, 120), nn.Linear(384, 120)
            self.neck_c = nn.Conv1d(120, 120, 7, padding=3, groups=120)
            self.lstm = nn.LSTM(120, lstm, batch_first=True, bidirectional=True)
            self.mix = nn.Linear(2 * lstm, 120)
            self.classifier = nn.Linear(120, classes)
            self.drop = nn.Dropout(dropout)
            self.q = nn.ModuleDict({k: ActQuant() for k in ("a0", "a", "b0", "b", "c0", "c", "bc", "lstm", "mix",
                                                             "feats", "logits")})

        def dense(self, layer, x, key):
            return self.q[key](F.linear(x, _weight_quant(layer.weight, self.q[key].enabled), layer.bias))

        def forward(self, frames, lengths):
            """Frames (B, T, 384), valid frames per line (B,) → logits (B, T, classes)."""
            a = self.q["a"](F.silu(self.dense(self.neck_a, frames, "a0")))
            b = self.q["b"](F.silu(self.dense(self.neck_b, frames, "b0")))
            wc = _weight_quant(self.neck_c.weight, self.q["c0"].enabled)
            c = self.q["c"](F.silu(self.q["c0"](F.conv1d(b.transpose(1, 2), wc, self.neck_c.bias, padding=3,
                                                           groups=120).transpose(1, 2))))
            x = self.drop(self.q["bc"](b + c))
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            y, _ = self.lstm(packed)
            y, _ = nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=x.shape[1])
            feats = self.q["feats"](self.dense(self.mix, self.q["lstm"](y), "mix") + a)
            return self.dense(self.classifier, feats, "logits")

        def load_keras(self, weights: list[np.ndarray]) -> None:
            state = self.state_dict()
            for name, w in zip(HEAD_KERAS, weights, strict=True):
                state[name] = torch.from_numpy(_keras_to_torch(name, w).astype(np.float32).copy())
            for suffix in ("", "_reverse"):
                state[f"lstm.bias_hh_l0{suffix}"] = torch.zeros_like(state[f"lstm.bias_hh_l0{suffix}"])
            self.load_state_dict(state)

        def keras(self) -> list[np.ndarray]:
            """The weights in the Keras head's order (the LSTM's two biases summed into Keras' one)."""
            state = {k: v.detach().float().cpu().numpy() for k, v in self.state_dict().items()}
            for suffix in ("", "_reverse"):
                state[f"lstm.bias_ih_l0{suffix}"] += state[f"lstm.bias_hh_l0{suffix}"]
            return [_torch_to_keras(n, state[n]) for n in HEAD_KERAS]

    class Student(nn.Module):
        """Grey lines (B, 48, W) in 0..255 → logits (B, W/8, classes), as the runtime feeds the
        int8 model (grey on three channels, x / 127.5 − 1)."""

        def __init__(self, backbone, top) -> None:
            super().__init__()
            self.backbone, self.head = backbone, top
            self.quant_state = (False, False, None)

        def forward(self, grey, lengths):
            x = (grey / 127.5 - 1.0)[:, None].expand(-1, 3, -1, -1)
            return self.head(self.backbone(x), lengths)

        def quantise(self, enabled: bool, observe: bool, momentum: float | None = None) -> None:
            """Fake quantisation on or off; ranges observed (``momentum`` None: min and max over all
            batches) or frozen."""
            self.quant_state = (enabled, observe, momentum)
            for m in self.modules():
                if isinstance(m, ActQuant):
                    m.enabled, m.observe, m.momentum = enabled, observe, momentum

    return ActQuant, OnnxBackbone, TorchHead, Student


# --- training (the GPU machine: torch, onnx, numpy, OpenCV) -------------------------------------------


class Pack:
    """``pack/lines.npz`` decoded: grey lines (48, W) uint8, per line its frames' teacher top
    classes (ids, probabilities), label ids ('' lines: none), kind and split."""

    def __init__(self, folder: Path) -> None:
        d = np.load(folder / "lines.npz")
        ends = np.cumsum(d["sizes"])
        blob = d["image"]
        self.lines = [_decode(blob[e - n: e].tobytes()) for e, n in zip(ends, d["sizes"])]
        self.widths = d["widths"].astype(np.int64)
        self.frames = self.widths // 8
        starts = np.concatenate([[0], np.cumsum(self.frames)[:-1]])
        ids, probs = d["ids"].astype(np.int64), d["probs"].astype(np.float32)
        self.ids = [ids[a: a + t] for a, t in zip(starts, self.frames)]
        self.probs = [probs[a: a + t] for a, t in zip(starts, self.frames)]
        labels, sizes = d["labels"].astype(np.int64), d["label_sizes"]
        self.labels = [labels[e - n: e] for e, n in zip(np.cumsum(sizes), sizes)]
        self.kind, self.split = d["kind"], d["split"]
        print(f"{len(self.lines)} lines: {np.bincount(self.kind)} by kind (rendered, photos, classroom), "
              f"{int(self.split.sum())} for validation", flush=True)

    def teacher_text(self, i: int) -> np.ndarray:
        """The teacher's greedy reading of line ``i`` as class ids."""
        best = self.ids[i][np.arange(len(self.ids[i])), self.probs[i].argmax(1)]
        return _collapse(best)


def _collapse(frame_ids: np.ndarray) -> np.ndarray:
    """Best-path CTC: repeats merged, blanks (0) dropped."""
    keep = np.ones(len(frame_ids), bool)
    keep[1:] = frame_ids[1:] != frame_ids[:-1]
    return frame_ids[keep & (frame_ids != 0)]


def _edits(a: np.ndarray, b: np.ndarray) -> int:
    """Levenshtein distance between two id sequences."""
    row = np.arange(len(b) + 1)
    for x in a:
        prev, row = row, np.empty_like(row)
        row[0] = prev[0] + 1
        sub = prev[:-1] + (b != x)
        for j in range(1, len(b) + 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, sub[j - 1])
    return int(row[-1])


def cer(refs: list[np.ndarray], hyps: list[np.ndarray]) -> float:
    return sum(_edits(r, h) for r, h in zip(refs, hyps)) / max(1, sum(len(r) for r in refs))


def _batch(data: Pack, lines: list[int], device):
    """Lines padded to the widest with the background (255): grey (B, 48, W), frames per line."""
    import torch

    width = int(max(data.widths[i] for i in lines))
    grey = np.full((len(lines), 48, width), 255, np.uint8)
    for r, i in enumerate(lines):
        grey[r, :, : data.widths[i]] = data.lines[i]
    return torch.from_numpy(grey).to(device).float(), torch.from_numpy(data.frames[lines])


def augment(grey, gen):
    """Per line a camera's variation that keeps the frames where they are: contrast, brightness,
    blur (half the lines), noise. (B, 48, W) in 0..255."""
    import torch
    import torch.nn.functional as F

    b = grey.shape[0]
    dev = grey.device
    contrast = torch.empty(b, 1, 1, device=dev).uniform_(0.6, 1.0, generator=gen)
    offset = torch.empty(b, 1, 1, device=dev).uniform_(0.0, 60.0, generator=gen)
    x = grey * contrast + offset
    blur = torch.tensor([1.0, 2.0, 1.0], device=dev)
    kernel = (blur[:, None] * blur[None, :] / 16.0)[None, None]
    blurred = F.conv2d(F.pad(x[:, None], (1, 1, 1, 1), mode="replicate"), kernel)[:, 0]
    pick = (torch.rand(b, 1, 1, device=dev, generator=gen) < 0.5).float()
    x = pick * blurred + (1 - pick) * x
    sigma = torch.empty(b, 1, 1, device=dev).uniform_(0.0, 8.0, generator=gen)
    x = x + sigma * torch.randn(x.shape, device=dev, generator=gen)
    return x.clamp(0, 255)


def build_student(pack: Path, head: Path, init: Path | None = None):
    """The torch student: the pack's backbone and ``head`` (a ``.head.npz``), or a checkpoint's
    weights (``init``)."""
    import onnx

    _, OnnxBackbone, TorchHead, Student = torch_modules()
    from toolchain.crnn.student import load_head

    weights, cfg = load_head(head)
    if cfg["lstm_stride"] != 8:
        raise SystemExit("the joint training handles the BiLSTM at W/8 only")
    model = Student(OnnxBackbone(onnx.load(str(pack / "backbone.onnx"))), TorchHead(cfg["classes"], cfg["lstm"],
                                                                                   cfg["dropout"]))
    model.head.load_keras(weights)
    if init is not None:
        load_checkpoint(model, init)
    return model, cfg


def save_checkpoint(model, cfg: dict, state: dict, path: Path) -> None:
    """Backbone initialisers (``bb/<name>``) and the Keras-ordered head weights (``wNN``), float16,
    with the head's shape and the run's state (steps, seconds trained): one file per checkpoint."""
    bb = {f"bb/{k}": v.astype(np.float16) for k, v in model.backbone.initialisers().items()}
    head = {f"w{i:02d}": w.astype(np.float16) for i, w in enumerate(model.head.keras())}
    quant = {f"q/{k}": v.detach().float().cpu().numpy() for k, v in model.state_dict().items()
             if k.endswith((".lo", ".hi"))}
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, config=json.dumps(cfg), state=json.dumps(state), **bb, **head, **quant)
    tmp.rename(path)


def load_checkpoint(model, path: Path) -> dict:
    """Weights (and the fake quantisers' ranges) from :func:`save_checkpoint`; returns its state."""
    import torch

    d = np.load(path)
    for k, p in model.backbone.params.items():
        p.data.copy_(torch.from_numpy(d[f"bb/{k.replace('__', '.')}"].astype(np.float32)))
    model.head.load_keras([d[k].astype(np.float32) for k in sorted(k for k in d.files if k.startswith("w"))])
    state = model.state_dict()
    for k in d.files:
        if k.startswith("q/"):
            state[k[2:]].copy_(torch.from_numpy(d[k]))
            state[k[2:].rsplit(".", 1)[0] + ".seen"].fill_(True)
    return json.loads(str(d["state"]))


def evaluate(model, data: Pack, lines: np.ndarray, device, batch: int = 64) -> dict[str, float]:
    """Greedy CER on validation lines, the model as trained (fake-quantised when on): rendered
    lines against their text, real lines against the teacher's reading."""
    import torch

    model.eval()
    saved = model.quant_state
    model.quantise(saved[0], False)
    order = sorted(lines, key=lambda i: data.widths[i])
    refs, hyps = {0: [], 1: []}, {0: [], 1: []}
    with torch.no_grad():
        for k in range(0, len(order), batch):
            group = order[k: k + batch]
            grey, frames = _batch(data, group, device)
            best = model(grey, frames).argmax(-1).cpu().numpy()
            for i, row in zip(group, best):
                real = int(data.kind[i] > 0)
                refs[real].append(data.teacher_text(i) if real else data.labels[i])
                hyps[real].append(_collapse(row[: data.frames[i]]))
    model.train()
    model.quantise(*saved)
    return {"val_cer_rendered": cer(refs[0], hyps[0]), "val_cer_real_vs_teacher": cer(refs[1], hyps[1])}


def _loss(model, data: Pack, lines: list[int], grey, frames, device):
    """(loss, teacher cross-entropy, CTC) of a batch, each a batch mean: per line the
    cross-entropy to the teacher's top classes averaged over its frames, plus CTC on its text
    (rendered lines) divided by its frames."""
    import torch
    import torch.nn.functional as F

    logits = model(grey, frames)
    t = logits.shape[1]
    mask = (torch.arange(t)[None] < frames[:, None]).to(device).float()
    logq = F.log_softmax(logits.float(), -1)
    ids = torch.zeros((len(lines), t, TOP_K), dtype=torch.int64)
    probs = torch.zeros((len(lines), t, TOP_K))
    for r, i in enumerate(lines):
        ids[r, : data.frames[i]] = torch.from_numpy(data.ids[i])
        probs[r, : data.frames[i]] = torch.from_numpy(data.probs[i])
    ids, probs = ids.to(device), probs.to(device)
    kd = -(probs * logq.gather(2, ids)).sum(-1)
    kd = ((kd * mask).sum(1) / frames.to(device)).mean()
    labelled = [r for r, i in enumerate(lines) if len(data.labels[i])]
    ctc = torch.zeros((), device=device)
    if labelled:
        targets = torch.from_numpy(np.concatenate([data.labels[lines[r]] for r in labelled]))
        lengths = torch.tensor([len(data.labels[lines[r]]) for r in labelled])
        per = F.ctc_loss(logq[labelled].transpose(0, 1), targets.to(device), frames[labelled].to(device),
                         lengths.to(device), blank=0, reduction="none", zero_infinity=True)
        ctc = (per / frames[labelled].to(device)).sum() / len(lines)
    return kd + ctc, kd, ctc


def train(args: argparse.Namespace) -> None:
    """Backbone and head together on the pack, quantisation-aware, for ``--minutes`` of training
    (wall clock, evaluations excluded), resuming from ``OUT/last.npz``. Loss per line: the
    cross-entropy to the teacher's top classes per frame, plus CTC on the text of rendered lines
    (divided by the frames). Adam with a cosine over the run's time; the backbone at ``--lr-backbone``.
    Writes ``history.csv``, ``last.npz`` (float16, for export) and ``resume.pt`` (float32 weights,
    Adam's moments) at every evaluation and on SIGTERM/SIGINT, and ``--snapshots`` checkpoints
    ``t<minutes>.npz`` at even times of the run. ``--minutes`` is the whole run's budget (the cosine
    spans it): give the same value when resuming. Out of GPU memory, the batches halve."""
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = False
    args.out.mkdir(parents=True, exist_ok=True)
    data = Pack(args.pack)
    last = args.out / "last.npz"
    model, cfg = build_student(args.pack, args.head, last if last.exists() else args.init)
    state = json.loads(str(np.load(last)["state"])) if last.exists() else {"step": 0, "seconds": 0.0}
    model.to(device)
    val = np.flatnonzero(data.split == 1)
    val = val[np.linspace(0, len(val) - 1, min(len(val), args.val_lines)).astype(int)] if args.val_lines else val
    pools = [np.flatnonzero((data.split == 0) & (data.kind == 0)), np.flatnonzero((data.split == 0) & (data.kind > 0))]
    pools = [p[np.argsort(data.widths[p], kind="stable")] for p in pools]
    rng = np.random.default_rng(args.seed + state["step"])
    gen = torch.Generator(device=device).manual_seed(args.seed + state["step"])

    def sample() -> list[int]:
        """A batch of lines of similar width from one pool (real half the time): a window of
        the pool sorted by width, as many lines as ``--columns`` pixels of width allow."""
        pool = pools[int(rng.random() < args.real_share)]
        start = int(rng.integers(len(pool)))
        width = int(data.widths[pool[min(len(pool) - 1, start + args.batch - 1)]])
        size = int(np.clip(args.columns // width, 8, args.batch))
        start = min(start, len(pool) - size)
        return [int(i) for i in pool[start: start + size]]

    if not last.exists():  # the quantisers' ranges first (observed, not applied), then training with them on
        model.eval()
        model.quantise(enabled=False, observe=True)
        with torch.no_grad():
            for _ in range(args.calib_batches):
                model(*_batch(data, sample(), device))
        model.train()
    model.quantise(enabled=args.qat, observe=args.qat, momentum=0.01)
    backbone = list(model.backbone.parameters())
    inherited = [p for n, p in model.head.named_parameters() if n.split(".")[0] in ("neck_a", "neck_b", "neck_c",
                                                                                     "classifier")]
    own = [p for n, p in model.head.named_parameters() if n.split(".")[0] in ("lstm", "mix")]
    groups = [{"params": backbone, "lr": args.lr_backbone}, {"params": inherited, "lr": args.lr * 0.3},
              {"params": own, "lr": args.lr}]
    for g in groups:
        g["peak"] = g["lr"]
    opt = torch.optim.Adam(groups)
    exact = args.out / "resume.pt"  # float32 weights and Adam's moments: a resume that loses nothing
    if exact.exists() and last.exists():
        saved = torch.load(exact, map_location=device, weights_only=False)
        if saved["state"]["step"] == state["step"]:
            model.load_state_dict(saved["model"])
            opt.load_state_dict(saved["opt"])
            for g, peak in zip(opt.param_groups, (g["peak"] for g in groups)):
                g["peak"] = peak
    stop = []  # SIGTERM or SIGINT: finish the step, save, leave
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(True))

    def checkpoint() -> None:
        save_checkpoint(model, cfg, state, last)
        tmp = exact.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "state": dict(state)}, tmp)
        tmp.rename(exact)

    budget = args.minutes * 60
    history = args.out / "history.csv"
    if not history.exists():
        history.write_text("step,seconds,loss,kd,ctc,val_cer_rendered,val_cer_real_vs_teacher,lines_per_s\n")
    m = evaluate(model, data, val, device)
    print(f"start (step {state['step']}, {state['seconds']:.0f} s trained): {m}", flush=True)
    if state["step"] == 0:
        with history.open("a") as f:
            f.write(f"0,0,,,,{m['val_cer_rendered']:.4f},{m['val_cer_real_vs_teacher']:.4f},\n")
    snapshots = [budget * (q + 1) / args.snapshots for q in range(args.snapshots)]
    snapshots = [t for t in snapshots if t > state["seconds"]]
    sums, seen, next_eval = torch.zeros(3, device=device), 0, state["seconds"] + args.eval_every
    t0, s0 = time.time(), state["seconds"]
    while True:
        seconds = s0 + time.time() - t0
        if stop:
            state["seconds"] = seconds
            checkpoint()
            print(f"stopped: step {state['step']}, {seconds:.0f} s trained, saved to {last}", flush=True)
            return
        if seconds >= budget:
            break
        frac = seconds / budget
        scale = min(1.0, frac / 0.03) * 0.5 * (1 + math.cos(math.pi * frac))
        for g in opt.param_groups:
            g["lr"] = g["peak"] * scale
        lines = sample()
        grey, frames = _batch(data, lines, device)
        grey = augment(grey, gen) if rng.random() < args.augment else grey
        try:
            loss, kd, ctc = _loss(model, data, lines, grey, frames, device)
            opt.zero_grad(set_to_none=True)
            loss.backward()
        except torch.cuda.OutOfMemoryError:
            opt.zero_grad(set_to_none=True)
            args.columns //= 2
            torch.cuda.empty_cache()
            print(f"out of memory: batches of at most {args.columns} columns from now on", flush=True)
            continue
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        state["step"] += 1
        sums += torch.stack([loss.detach(), kd.detach(), ctc.detach()])
        seen += len(lines)
        seconds = s0 + time.time() - t0
        if seconds >= next_eval or seconds >= budget or (snapshots and seconds >= snapshots[0]):
            state["seconds"] = seconds
            steps = max(1, state["step"] - state.get("logged", 0))
            rate = seen / max(1e-9, seconds - state.get("logged_s", s0))
            t_eval = time.time()
            m = evaluate(model, data, val, device)
            loss_row = ",".join(f"{v / steps:.4f}" for v in sums.tolist())
            with history.open("a") as f:
                f.write(f"{state['step']},{seconds:.0f},{loss_row},{m['val_cer_rendered']:.4f},"
                        f"{m['val_cer_real_vs_teacher']:.4f},{rate:.0f}\n")
            print(f"step {state['step']} {seconds:.0f} s: loss {loss_row} {m} {rate:.0f} lines/s", flush=True)
            state["logged"], state["logged_s"] = state["step"], seconds
            sums, seen = torch.zeros(3, device=device), 0
            checkpoint()
            while snapshots and seconds >= snapshots[0]:
                name = f"t{snapshots.pop(0) / 60:.1f}min.npz".replace(".", "_", 1)  # t6_5min.npz
                save_checkpoint(model, cfg, state, args.out / name)
            next_eval = seconds + args.eval_every
            t0 += time.time() - t_eval  # evaluations do not count as training time
    print(f"done: {state['step']} steps, {budget:.0f} s of training", flush=True)


# --- back here: the int8 model (TensorFlow) -----------------------------------------------------------


def trained_backbone(weights: Path, base: Path):
    """The backbone's ONNX graph (``base``: float32, as the pack step extracted it) with the
    checkpoint's trained initialisers in place of the teacher's."""
    import onnx
    from onnx import numpy_helper

    d = np.load(weights)
    graph = onnx.load(str(base))
    names = {i.name for i in graph.graph.initializer}
    trained = {k[3:]: d[k].astype(np.float32) for k in d.files if k.startswith("bb/")}
    if set(trained) - names:
        raise SystemExit(f"{weights}: weights for initialisers {sorted(set(trained) - names)[:5]} the backbone lacks")
    for i, init in enumerate(graph.graph.initializer):
        if init.name in trained:
            graph.graph.initializer[i].CopyFrom(numpy_helper.from_array(trained[init.name], init.name))
    return graph


def export(args: argparse.Namespace) -> None:
    """A checkpoint (``--weights``) as full-int8 (``--models``) and float (``--out``, with ``--float``) TFLite with
    contract and audit, calibrated as the head-only student's export (300 lines, half real crops),
    and its head's ``.head.npz`` and backbone's ``.backbone.npz`` beside the int8 model."""
    from toolchain.bench.classroom import LEARN
    from toolchain.crnn.student import NAME, TEACHER, calibration, read_shape, save_head, student, write_tflite
    from toolchain.onnx_import.recognizer import _dist_version, _sha256, resolve

    d = np.load(args.weights)
    cfg, state = read_shape(str(d["config"])), json.loads(str(d["state"]))
    weights = [d[k].astype(np.float32) for k in sorted(k for k in d.files if k.startswith("w"))]
    graph = trained_backbone(args.weights, args.pack.parent / "backbone.onnx")
    model = student(weights, cfg, graph)
    path, description = resolve(TEACHER)
    provenance = {
        "source": f"distilled here from {description}: its convolutional backbone and neck, fine-tuned with a new "
                  "BiLSTM head and its classifier, quantisation-aware (toolchain.crnn.joint)",
        "onnx_sha256": _sha256(path),
        "training": {"lines": "rendered train-split lines and real line crops of ../shared/unlabelled and of the "
                              f"classroom's learning lectures {list(LEARN)} (the teacher's reading)",
                     "head": cfg, "steps": state["step"], "seconds": round(state["seconds"])},
        "converted_with": f"tensorflow {_dist_version('tensorflow-cpu')}, tf_keras {_dist_version('tf_keras')}",
        "licence": "Apache-2.0 (the teacher's backbone)",
        "upstream": "PaddlePaddle/PaddleOCR (https://github.com/PaddlePaddle/PaddleOCR)"}
    data = np.load(args.pack / "lines.npz")
    blob, sizes = data["image"], data["sizes"]
    real = [_decode(blob[e - n: e].tobytes()) for e, n, k in zip(np.cumsum(sizes), sizes, data["kind"]) if k == 1]
    args.out.mkdir(parents=True, exist_ok=True)
    if args.float:
        write_tflite(model, args.out / f"{NAME}_float.tflite", provenance)
    write_tflite(model, args.models / f"{NAME}_int8.tflite", provenance, calibration(real, args.calib, args.seed))
    save_head(weights, cfg, args.models / f"{NAME}.head.npz")
    np.savez(args.models / f"{NAME}.backbone.npz", **{k: d[k] for k in d.files if k.startswith("bb/")})


def source_half(source: str) -> int:
    """0 or 1 by a stable hash of a dev line's source image (its ``[crop …]`` left out), so the
    lines of one photo stay in one half."""
    import zlib

    return zlib.crc32(source.split(" [crop")[0].encode("utf-8")) % 2


def torch_readings(checkpoint: Path, pack: Path, head: Path, images: list[np.ndarray]) -> dict[str, list[str]]:
    """Greedy readings of a training checkpoint in PyTorch, in float and fake-quantised, of line
    images prepared as the runtime prepares them for the student (its contract's widths)."""
    import torch

    from edge_ocr.model.contract import ModelContract
    from edge_ocr.recognition.charset import Charset
    from edge_ocr.recognition.preprocess import normalize_line
    from toolchain.crnn.student import CHARSET, NAME, greedy_text

    width = ModelContract.load(Path("models") / f"{NAME}_int8.tflite").width
    symbols = Charset.load(CHARSET).symbols
    model, _ = build_student(pack, head, checkpoint)
    model.eval()
    observed = any(float(v.abs().max()) > 0 for k, v in model.state_dict().items() if k.endswith(".hi"))
    out = {}
    for mode, quant in (("float", False), ("fake int8", True))[: 2 if observed else 1]:  # no ranges: float only
        model.quantise(quant, False)
        hyps = []
        with torch.no_grad():
            for image in images:
                line = normalize_line(image, 48, multiple=width.multiple, max_width=width.max_width)
                grey = np.full((48, width.width_for(line.shape[1])), 255, np.float32)
                grey[:, : line.shape[1]] = line
                logits = model(torch.from_numpy(grey)[None], torch.tensor([grey.shape[1] // 8]))[0]
                hyps.append(greedy_text(logits.argmax(-1).numpy(), symbols))
        out[f"{checkpoint.stem} ({mode})"] = hyps
    return out


def compare(args: argparse.Namespace) -> None:
    """CER on the dev set's line images of each ``--compare`` model: a TFLite model through the
    runtime's recogniser (greedy, 1 thread), a training checkpoint (``.npz``) in PyTorch in float
    and fake-quantised (:func:`torch_readings`): all lines, by category, and on each half of the
    lines split by source image; then which model each half chooses and what it scores on the
    other half (cross-validation: a model becomes the default only if chosen on both halves)."""
    from edge_ocr.imageio import read_image
    from edge_ocr.labels import read_labels
    from edge_ocr.recognition.recognizer import Recognizer
    from toolchain.scoring import score

    rows = [r for r in read_labels(args.devset) if r["category"].endswith("_line")]
    images = [read_image(args.devset / r["file"]) for r in rows]
    half = np.array([source_half(r["source"]) for r in rows])
    cats = sorted({r["category"] for r in rows})
    table = {}
    for path in args.compare:
        if path.suffix == ".npz":
            readings = torch_readings(path, args.pack, args.head, images)
        else:
            rec = Recognizer(path, num_threads=1)
            readings = {path.name: [rec.recognize([image])[0].text for image in images]}
        for name, hyps in readings.items():

            def cer_where(keep, hyps=hyps) -> float:
                return score([r["text"] for r, k in zip(rows, keep) if k], [h for h, k in zip(hyps, keep) if k])["cer"]

            table[name] = {"all": cer_where([True] * len(rows)), "half0": cer_where(half == 0),
                           "half1": cer_where(half == 1),
                           **{c: cer_where([r["category"] == c for r in rows]) for c in cats}}
            print(json.dumps({name: {k: round(v, 4) for k, v in table[name].items()}}), flush=True)
    for chosen_on, reported_on in (("half0", "half1"), ("half1", "half0")):
        best = min(table, key=lambda m: table[m][chosen_on])
        print(f"chosen on {chosen_on} ({int((half == int(chosen_on[-1])).sum())} lines): {best}; on {reported_on}: "
              + ", ".join(f"{m} {table[m][reported_on]:.4f}" for m in table), flush=True)


def main() -> None:
    from toolchain.common import UNLABELLED, parser

    ap = parser(__doc__)
    ap.add_argument("step", choices=("pack", "train", "export", "compare"))
    ap.add_argument("--out", type=Path, default=Path("build/joint"),
                    help="pack: its parts and pack/; train: the run (checkpoints, history); export: the float model")
    ap.add_argument("--pack", type=Path, default=Path("build/joint/pack"), help="train, export: the pack")
    ap.add_argument("--photos", type=Path, default=UNLABELLED, help="real photos without labels (never the dev set)")
    ap.add_argument("--classroom", type=Path, default=Path("../shared/classroom"),
                    help="pack: classroom frames (its learning lectures only)")
    ap.add_argument("--head", type=Path, default=Path("models/crnn_student_zh_en.head.npz"),
                    help="train: the head to start from")
    ap.add_argument("--rendered", type=int, default=6000, help="pack: rendered training lines")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", type=Path, help="train, new run: start from this checkpoint")
    ap.add_argument("--minutes", type=float, default=6.5, help="train: minutes of training (resumed runs add up)")
    ap.add_argument("--eval-every", type=float, default=45.0, help="train: seconds of training between evaluations")
    ap.add_argument("--batch", type=int, default=512, help="train: most lines per batch")
    ap.add_argument("--columns", type=int, default=131072, help="train: most pixels of width per batch")
    ap.add_argument("--lr", type=float, default=2e-4, help="train: the BiLSTM's peak rate (neck, classifier: 0.3 ×)")
    ap.add_argument("--lr-backbone", type=float, default=3e-5, help="train: the backbone's peak rate")
    ap.add_argument("--real-share", type=float, default=0.5, help="train: share of batches of real lines")
    ap.add_argument("--augment", type=float, default=0.7, help="train: share of batches varied (contrast, blur, noise)")
    ap.add_argument("--snapshots", type=int, default=2, help="train: checkpoints kept at even times of the run")
    ap.add_argument("--calib-batches", type=int, default=20, help="train: batches observed for the first ranges")
    ap.add_argument("--val-lines", type=int, help="train: validate on this many of the validation lines (all)")
    ap.add_argument("--no-qat", dest="qat", action="store_false", help="train: no fake quantisation (float)")
    ap.add_argument("--weights", type=Path, help="export: a checkpoint of train")
    ap.add_argument("--models", type=Path, default=Path("models"), help="export: where the int8 model goes")
    ap.add_argument("--calib", type=int, default=300, help="export: calibration lines for int8")
    ap.add_argument("--float", action="store_true", help="export: the float model too (in --out)")
    ap.add_argument("--compare", type=Path, nargs="+",
                    help="compare: TFLite models and training checkpoints (.npz) scored on the dev lines")
    ap.add_argument("--devset", type=Path, default=Path("../shared/devset"), help="compare: the dev set")
    args = ap.parse_args()
    {"pack": pack, "train": train, "export": export, "compare": compare}[args.step](args)


if __name__ == "__main__":
    main()
