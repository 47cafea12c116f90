"""The CRNN student: PP-OCRv6 small's convolutional backbone, neck convolutions and classifier
(their weights) with a BiLSTM where the teacher has attention, over the zh/en charset,
distilled from the whole PP-OCRv6 small recogniser.

Why this shape: the teacher's SVTR neck (attention and LayerNorm) is what would not quantise to
full int8 (dev CER 0.135 against 0.044 in float, MODEL_CARD); its convolutions and a BiLSTM do.
The teacher and the student share the backbone, so the student's frames are the teacher's frames
(one per 8 input columns): the teacher's per-frame distribution and the features its classifier
reads are targets for each of them. Starting from the teacher's classifier is what lets 20,000
rendered lines reach 10,000 classes (a head learnt from nothing stalled at validation CER 0.23,
this one reaches 0.08 where the teacher is at 0.075; MODEL_CARD).

Steps (``make student``; the teacher comes from the ``rapidocr`` 3.10.0 wheel, Apache-2.0):

    python -m toolchain.crnn.student cache  --out build/rec_distill   # teacher posteriors + features
    python -m toolchain.crnn.student train  --out build/rec_distill   # the head, resumable
    python -m toolchain.crnn.student export --out build/rec_distill --models models

``cache`` renders train-split lines (fonts and texts of the train split; handwriting faces and
camera degradations) and cuts real line crops from ``../shared/unlabelled`` (real photos that
exist for distillation; never the dev set) with the runtime's own detector, normalises both as
the runtime does, and stores per frame the backbone's features (float16) and the teacher's top
classes (mapped to the student's charset) and classifier input. ``train`` fits the head on those
features with CTC on the rendered lines' text plus, on every line, cross-entropy to the teacher's
distribution and squared error to its classifier input. The backbone stays frozen, so two CPU
cores train the head in minutes per epoch. ``export`` rebuilds
the backbone in Keras (:mod:`toolchain.onnx_import.keras_rebuild`) under the trained head and converts the whole
to full-integer int8 (fused LSTM, int16 cell state) and to float, with contract and audit.
"""

from __future__ import annotations

import argparse
import csv
import functools
import itertools
import json
import math
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnx

from toolchain.common import distill_parser, ort_session, run_step, start_history, stop_on_sigterm
from toolchain.onnx_import.recognizer import (
    NORMALISATION,
    ImportFailedError,
    _dist_version,
    _sha256,
    charset_from_metadata,
    classroom_symbol,
    input_tensor,
    prepare,
    resolve,
)

HEIGHT, STRIDE, FEATURES = 48, 8, 384
TEACHER = "ppocrv6"
TEACHER_SHA256 = "6f327246b50388f3c176ae304bd95767ea6dc0c9ae92153ef8cbe210b3c14884"
CHARSET = Path("models/ppocrv6_small.charset.txt")  # the classes the shipped PP-OCRv6 import keeps
TOP_K = 8  # teacher classes stored per frame (they hold > 99.9 % of its mass on rendered lines)
MAX_WIDTH = HEIGHT * 20  # widest rendered line: 120 frames
NAME = "crnn_student_zh_en"


@functools.cache
def _prepared_teacher() -> tuple[bytes, str]:
    path, description = resolve(TEACHER)
    if _sha256(path) != TEACHER_SHA256:
        raise ImportFailedError(f"{path}: not the PP-OCRv6 small recogniser this student was built on")
    model, _ = prepare(onnx.load(str(path)))
    return model.SerializeToString(), description


def teacher_graph() -> tuple[onnx.ModelProto, str, str]:
    """The prepared teacher (logits out, batch 1, width dynamic; a fresh copy per call, prepared
    once per process), its description and the name of the backbone's output (the AveragePool
    that brings the feature map to one row)."""
    data, description = _prepared_teacher()
    model = onnx.load_from_string(data)
    pools = [n for n in model.graph.node if n.op_type == "AveragePool"]
    if len(pools) != 1:
        raise ImportFailedError(f"expected one AveragePool closing the teacher's backbone, found {len(pools)}")
    return model, description, pools[0].output[0]


def teacher_parts(model: onnx.ModelProto) -> dict[str, np.ndarray | str]:
    """What the student takes over from the teacher's neck and head, by position in its graph:
    the two 1 × 1 convolutions on the backbone's frames (``a``: the shortcut added after the
    attention blocks; ``b``: their input), the 1 × 7 depthwise convolution on ``b`` (``c``), the
    classifier (``fc``), as (weights, bias) in Keras layout; and ``hint``, the name of the
    classifier's input (the per-frame features the student learns to reproduce)."""
    from onnx import numpy_helper

    nodes = list(model.graph.node)
    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    start = next(i for i, n in enumerate(nodes) if n.op_type == "AveragePool")
    convs = [n for n in nodes[start:] if n.op_type == "Conv"][:3]
    fc = [n for n in nodes if n.op_type == "MatMul" and n.input[1] in init][-1]
    fc_bias = next(n for n in nodes if n.op_type == "Add" and fc.output[0] in n.input)
    shapes = [init[c.input[1]].shape for c in convs]
    if shapes != [(120, FEATURES, 1, 1), (120, FEATURES, 1, 1), (120, 1, 1, 7)]:
        raise ImportFailedError(f"the teacher's neck convolutions are {shapes}, not the PP-OCRv6 small ones")
    (a, b, c) = convs
    bias = next(init[i] for i in fc_bias.input if i in init)
    return {"a": (init[a.input[1]][:, :, 0, 0].T, init[a.input[2]]),
            "b": (init[b.input[1]][:, :, 0, 0].T, init[b.input[2]]),
            "c": (init[c.input[1]][:, 0, 0, :].T[:, :, None], init[c.input[2]]),
            "fc": (init[fc.input[1]], bias), "hint": fc.input[0]}


def class_map(model: onnx.ModelProto, symbols: list[str]) -> np.ndarray:
    """Teacher output columns of the student's classes: blank, then each symbol in ``symbols``."""
    full = charset_from_metadata(model)
    where = {s: i + 1 for i, s in enumerate(full)}
    missing = [s for s in symbols if s not in where]
    if missing:
        raise ImportFailedError(f"student symbols the teacher lacks: {''.join(missing[:20])}")
    if any(not classroom_symbol(s) for s in symbols):
        raise ImportFailedError("the student charset holds symbols outside the classroom set")
    return np.array([0] + [where[s] for s in symbols], np.int64)


def model_input(line: np.ndarray) -> np.ndarray:
    """A normalised grey line (H, W) in 0..255 → the model's NHWC input at a width multiple of 8,
    as the runtime builds it (grey on every channel, PaddleOCR's scaling)."""
    return input_tensor(line, 3, max(STRIDE * 4, -(-line.shape[1] // STRIDE) * STRIDE))


def _top_k(logits: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, k) class ids and probabilities of the teacher restricted to the student's classes."""
    z = logits[:, cols]
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    ids = np.argpartition(-p, TOP_K, axis=1)[:, :TOP_K]
    return ids.astype(np.uint16), np.take_along_axis(p, ids, axis=1).astype(np.float16)


class HandRenderer:
    """Train-split lines as a camera sees handwriting: a share drawn with ``handright`` (each
    character moved, turned and resized at random, the way a hand does) in the handwriting faces,
    then the renderer's own geometry (shear, rotation, perspective, elastic warp) and camera
    degradations (light gradient, stroke thickening or thinning, blur, noise, JPEG), with a
    stronger elastic warp on top. Returns the line normalised as the runtime does."""

    def __init__(self, seed: int, hand_share: float = 0.5) -> None:
        from edge_ocr.recognition.charset import Charset
        from toolchain.synth.corpus import Corpus
        from toolchain.synth.render import LineRenderer

        corpus = Corpus.load("train", Charset.load(CHARSET))
        self.lines = LineRenderer("train", corpus, seed, height=HEIGHT, max_width=MAX_WIDTH)
        # Humor Sans draws lower case as capitals: its lines' labels would contradict the teacher.
        self.lines.latin = [f for f in self.lines.latin if "Humor" not in f.path]
        self.rng = random.Random(seed + 1)
        self.hand_share = hand_share

    def sample(self) -> tuple[np.ndarray, str]:
        from edge_ocr.recognition.preprocess import normalize_line

        r = self.lines
        if self.rng.random() < self.hand_share:
            for _ in range(5):
                text = r.sampler.sample()
                spec = r._choose_font(text)
                text = r._shorten(text, 0.6) if len(text) > 24 else text
                image = self._handwrite(text, spec)
                if image is not None:
                    return normalize_line(self._elastic(image), HEIGHT, multiple=STRIDE, max_width=MAX_WIDTH), text
        image, text = r.sample_raw()
        if self.rng.random() < 0.3:
            image = self._elastic(image)
        return normalize_line(image, HEIGHT, multiple=STRIDE, max_width=MAX_WIDTH), text

    def _handwrite(self, text: str, spec) -> np.ndarray | None:
        import handright
        from PIL import Image

        from toolchain.synth.fonts import coverage
        from toolchain.synth.render import INKS, _font, _pick

        cover = coverage(spec.path, spec.index)
        text = " ".join("".join(c for c in text if c in cover or c == " ").split())
        if not text:
            return None
        rng = self.rng
        size = rng.randint(28, 52)
        font = _font(spec.path, spec.index, size)
        width = int(sum(font.getlength(c) for c in text) * 1.35 + size * 3)
        paper = rng.randint(205, 255)
        tint = tuple(min(255, paper + rng.randint(-12, 6)) for _ in range(3))
        template = handright.Template(
            background=Image.new("RGB", (width, int(size * 2.2)), tint), font=font,
            line_spacing=int(size * 1.6), fill=_pick(rng, INKS), left_margin=size, top_margin=int(size * 0.3),
            right_margin=size, word_spacing=int(size * rng.uniform(0.1, 0.4)),
            font_size_sigma=size * rng.uniform(0.02, 0.07), word_spacing_sigma=size * 0.05,
            perturb_x_sigma=size * rng.uniform(0.02, 0.07), perturb_y_sigma=size * rng.uniform(0.02, 0.07),
            perturb_theta_sigma=rng.uniform(0.03, 0.1))
        pages = list(handright.handwrite(text, template, seed=rng.randint(0, 2**31)))
        if len(pages) != 1:
            return None
        arr = np.asarray(pages[0])[:, :, ::-1].copy()
        arr = self.lines._crop(arr, list(tint), size)
        arr = self.lines._geometry(arr, list(tint))
        return self.lines._photometric(arr)

    def _elastic(self, image: np.ndarray) -> np.ndarray:
        """A stronger warp than the renderer's: up to ~6 % of the line height (pen wobble)."""
        from toolchain.synth.render import elastic

        h = image.shape[0]
        nrng = np.random.default_rng(self.rng.randint(0, 2**31))
        sigma = max(2.0, h * self.rng.uniform(0.08, 0.2))
        return elastic(image, sigma, h * self.rng.uniform(0.5, 1.5), nrng)


def ctc_fits(labels: list[int], frames: int) -> bool:
    """Whether CTC can align ``labels`` to ``frames`` frames: one frame per label and a blank
    between each pair of equal neighbours (else the loss is infinite and TensorFlow's raises)."""
    return len(labels) + sum(a == b for a, b in itertools.pairwise(labels)) <= frames


def real_lines(photos: Path) -> list[tuple[int, np.ndarray]]:
    """(photo index, normalised line) for every line the runtime's page reader cuts from the photos
    under ``photos`` (its detector, orientation and crops; default settings), plus each photo
    that is itself one line (wider than 3 × its height)."""
    import cv2

    from edge_ocr.config import load
    from edge_ocr.page.build import build_reader
    from edge_ocr.recognition.preprocess import normalize_line
    from toolchain.onnx_import.detector import PHOTO_SUFFIXES

    reader = build_reader(load(None, environ={}))
    rec, captured = reader.recognizer, []
    prepare_line = rec.prepare
    rec.prepare = lambda crop: captured.append(prepare_line(crop)) or captured[-1]
    out = []
    files = sorted(p for p in photos.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES)
    for k, f in enumerate(files):
        image = cv2.imread(str(f))
        if image is None:
            continue
        captured.clear()
        reader.reset()
        reader.read(image)
        out += [(k, line) for line in captured if line.shape[1] >= HEIGHT]
        if image.shape[1] > 3 * image.shape[0]:
            out.append((k, normalize_line(image, HEIGHT, multiple=STRIDE, max_width=MAX_WIDTH)))
    return out


def saved_real_lines(out: Path) -> list[np.ndarray]:
    """The real line crops the cache step kept (``real_lines.npz``), in the order cut."""
    saved = np.load(out / "real_lines.npz")
    return [saved[k] for k in sorted((k for k in saved.files if k.startswith("arr_")), key=lambda k: int(k[4:]))]


def vary(line: np.ndarray, rng: random.Random) -> np.ndarray:
    """A normalised real line seen again through another camera: scale, blur, noise, JPEG, contrast."""
    import cv2

    from edge_ocr.recognition.preprocess import normalize_line

    img = line.astype(np.uint8)
    h, w = img.shape
    if rng.random() < 0.5:
        f = rng.uniform(0.4, 0.8)
        small = cv2.resize(img, (max(8, int(w * f)), max(8, int(h * f))), interpolation=cv2.INTER_AREA)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    out = img.astype(np.float32) * rng.uniform(0.6, 1.0) + rng.uniform(0, 60)
    if rng.random() < 0.4:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.4, 1.1))
    out += np.random.default_rng(rng.randint(0, 2**31)).normal(0, rng.uniform(1, 8), out.shape)
    img = np.clip(out, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        _, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, rng.randint(35, 90)])
        img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    return normalize_line(img, HEIGHT, multiple=STRIDE, max_width=MAX_WIDTH)


class Int8Backbone:
    """The teacher's backbone as the device runs it inside the student: full int8, calibrated on
    the lines the student's export is calibrated on. The head trained on its features (not the
    float ones) learns to read through the quantisation error (features' cosine to float: 0.93):
    int8 − float dev CER 0.014 → 0.001, int8 dev 0.103 → 0.100."""

    def __init__(self, path: Path, calib: Callable[[], Iterator[list[np.ndarray]]], threads: int = 2) -> None:
        from edge_ocr.model.interpreter import TFLiteModel

        if not path.exists():
            import tf_keras as keras

            image = keras.Input((HEIGHT, None, 3), batch_size=1, name="image")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(to_tflite(keras.Model(image, backbone_model()(image)), calib))
        self.model = TFLiteModel(path, num_threads=threads, runtime="litert")

    def __call__(self, line: np.ndarray) -> np.ndarray:
        """Normalised line (48, W) → its frames (W/8, 384), float16."""
        y = self.model(model_input(line.astype(np.float32)))
        return y.reshape(-1, y.shape[-1]).astype(np.float16)


class Teacher:
    """PP-OCRv6 small on ONNX Runtime, giving per line the backbone's frames, the features its
    classifier reads (the hint) and its own top classes per frame (in the student's charset)."""

    def __init__(self, threads: int = 2, backbone: Int8Backbone | None = None) -> None:
        from edge_ocr.recognition.charset import Charset

        self.backbone = backbone
        model, self.description, features = teacher_graph()
        for name in (features, teacher_parts(model)["hint"]):
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
        self.cols = class_map(model, Charset.load(CHARSET).symbols)
        self.session = ort_session(model, threads)
        self.input = self.session.get_inputs()[0].name

    def frames(self, line: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Normalised line (48, W) → features (T, 384: the int8 backbone's when one is given, as
        the device computes them) and hint (T, 120), float16; top class ids and probabilities
        (T, k) of the float teacher."""
        logits, feats, hint = self.session.run(None, {self.input: model_input(line).transpose(0, 3, 1, 2)})
        ids, p = _top_k(logits[0], self.cols)
        frames = self.backbone(line) if self.backbone is not None else feats[0, :, 0, :].T.astype(np.float16)
        return frames, hint[0].astype(np.float16), ids, p


def add_hints(out: Path, threads: int = 2) -> None:
    """``chunk_NNNN.hints.npy`` for chunks cached without it: the teacher's neck run on the
    cached backbone frames (the same graph from the backbone's output on)."""
    import tempfile

    from tqdm import tqdm

    model, _, features = teacher_graph()
    hint = teacher_parts(model)["hint"]
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "teacher.onnx", Path(tmp) / "neck.onnx"
        onnx.save(model, str(src))
        onnx.utils.extract_model(str(src), str(dst), [features], [hint])
        neck = ort_session(onnx.load(str(dst)), threads)
    for path in sorted(out.glob("chunk_????.npz")):
        target = path.with_suffix(".hints.npy")
        if target.exists():
            continue
        d = np.load(path)
        feats, offsets = d["feats"], d["offsets"]
        hints = np.zeros((len(feats), 120), np.float16)
        for a, b in tqdm(list(itertools.pairwise(offsets)), desc=f"hints {path.name}", mininterval=10):
            x = feats[a:b].astype(np.float32).T[None, :, None, :]
            hints[a:b] = neck.run(None, {features: x})[0][0]
        np.save(target.with_suffix(".tmp.npy"), hints)
        target.with_suffix(".tmp.npy").rename(target)


class Frames:
    """Lines as the head sees them: every frame's features and teacher classes, concatenated;
    per line its text ('' when unlabelled), its group (photo or chunk, for the split) and
    whether the teacher's distribution is a target for it (``distil``)."""

    def __init__(self, feats: np.ndarray, hints: np.ndarray, ids: np.ndarray, probs: np.ndarray,
                 lengths: np.ndarray, texts: list[str], groups: np.ndarray, distil: np.ndarray,
                 real: np.ndarray) -> None:
        self.feats, self.hints, self.ids, self.probs = feats, hints, ids, probs
        self.lengths = np.asarray(lengths, np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)
        self.texts, self.groups = texts, np.asarray(groups)
        self.distil, self.real = np.asarray(distil, np.float32), np.asarray(real, bool)

    @classmethod
    def from_items(cls, items: list[tuple]) -> Frames:
        """From (features, hint, ids, probabilities, text, group, distil weight, real) per line."""
        f, h, i, p, texts, groups, distil, real = zip(*items)
        return cls(np.concatenate(f), np.concatenate(h), np.concatenate(i), np.concatenate(p),
                   np.array([len(x) for x in f]), list(texts), np.array(groups), np.array(distil), np.array(real))

    @classmethod
    def load(cls, out: Path) -> Frames:
        """Every ``chunk_*.npz`` of the cache step in ``out``."""
        paths = sorted(out.glob("chunk_????.npz"))
        if not paths:
            raise SystemExit(f"{out}: no chunk_NNNN.npz; run the cache step first")
        parts = [np.load(p) for p in paths]
        groups = np.concatenate([np.where(d["groups"] >= 0, d["groups"], 1_000_000 + k) for k, d in enumerate(parts)])
        real = np.concatenate([d["groups"] >= 0 for d in parts])
        hints = np.concatenate([np.load(p.with_suffix(".hints.npy")) for p in paths])
        data = cls(np.concatenate([d["feats"] for d in parts]), hints, np.concatenate([d["ids"] for d in parts]),
                   np.concatenate([d["probs"] for d in parts]),
                   np.concatenate([np.diff(d["offsets"]) for d in parts]),
                   [str(t) for d in parts for t in d["texts"]], groups, np.ones(len(groups)), real)
        print(f"{len(data.texts)} lines ({int(real.sum())} real), {len(data.feats)} frames from {len(paths)} chunks",
              flush=True)
        return data

    def split(self) -> tuple[np.ndarray, np.ndarray]:
        """(train, validation) line indices: every 25th rendered line and the real lines of every
        10th photo are held out (a photo's lines and their views stay on one side)."""
        idx = np.arange(len(self.texts))
        val = np.where(self.real, self.groups % 10 == 0, idx % 25 == 0)
        return idx[~val], idx[val]

    def batch(self, lines: np.ndarray, encode) -> tuple[np.ndarray, ...]:
        """Frames (B, T, 384), the teacher's hints (B, T, 120), ids and probabilities (B, T, k),
        labels (B, L) (0-padded), whether each line has a label, and its distillation weight; all
        ``lines`` have one length T."""
        t = int(self.lengths[lines[0]])
        rows = self.starts[lines][:, None] + np.arange(t)[None]
        labels = [encode(self.texts[i]) for i in lines]
        y = np.zeros((len(lines), max(1, max(len(v) for v in labels))), np.int32)
        y[:, 0] = 1  # a placeholder label for unlabelled lines (TF's CTC refuses empty ones); masked out
        for r, v in enumerate(labels):
            y[r, : len(v)] = v
        return (self.feats[rows].astype(np.float32), self.hints[rows].astype(np.float32),
                self.ids[rows].astype(np.int32), self.probs[rows].astype(np.float32), y,
                np.array([len(v) > 0 for v in labels], np.float32), self.distil[lines])


def cache(args: argparse.Namespace) -> None:
    """Chunks of ``--chunk`` lines (``chunk_NNNN.npz`` in ``--out``): per frame the backbone
    features (float16) and the teacher's top classes; per line its text ('' for real crops)
    and source. Chunk 0 holds the real crops (each seen ``--real-views`` times); later chunks
    rendered lines. Re-running adds the chunks still missing, so the step resumes."""
    from tqdm import tqdm

    from edge_ocr.recognition.charset import Charset

    args.out.mkdir(parents=True, exist_ok=True)
    real_path = args.out / "real_lines.npz"
    if not real_path.exists():
        found = real_lines(args.photos)
        np.savez(real_path, *[line.astype(np.uint8) for _, line in found], groups=np.array([g for g, _ in found]))
        print(f"{len(found)} real lines from {args.photos}", flush=True)
    lines = saved_real_lines(args.out)
    groups = np.load(real_path)["groups"]
    backbone = Int8Backbone(args.out / "backbone_int8.tflite", calibration(lines, args.calib, args.seed), args.threads)
    teacher = Teacher(args.threads, backbone)
    charset = Charset.load(CHARSET)

    def write(path: Path, items: list[tuple[np.ndarray, str, int]]) -> None:
        feats, hints, ids, probs, offsets, texts, groups, widths = [], [], [], [], [0], [], [], []
        for line, text, group in tqdm(items, desc=path.name, unit="line", mininterval=10):
            f, h, i, p = teacher.frames(line)
            if text and not ctc_fits(charset.encode(text), len(f)):
                continue
            feats.append(f)
            hints.append(h)
            ids.append(i)
            probs.append(p)
            offsets.append(offsets[-1] + len(f))
            texts.append(text)
            groups.append(group)
            widths.append(line.shape[1])
        np.savez(path.with_suffix(".tmp.npz"), feats=np.concatenate(feats), ids=np.concatenate(ids),
                 probs=np.concatenate(probs), offsets=np.array(offsets, np.int64), texts=np.array(texts),
                 groups=np.array(groups, np.int32), widths=np.array(widths, np.int32))
        np.save(path.with_suffix(".hints.npy"), np.concatenate(hints))
        path.with_suffix(".tmp.npz").rename(path)

    real = args.out / "chunk_0000.npz"
    if not real.exists():
        rng = random.Random(args.seed)
        items = [(line, "", int(g)) for g, line in zip(groups, lines)]
        items += [(vary(line, rng), "", int(g)) for _ in range(args.real_views - 1) for g, line in zip(groups, lines)]
        write(real, items)
    for c in range(1, args.chunks + 1):
        path = args.out / f"chunk_{c:04d}.npz"
        if path.exists():
            continue
        renderer = HandRenderer(args.seed + c)
        write(path, [(*renderer.sample(), -1) for _ in range(args.chunk)])
    add_hints(args.out, args.threads)


HEAD = {"lstm": 64, "dropout": 0.1, "lstm_stride": 8}  # the shipped head (options change new runs)


def read_shape(text: str) -> dict:
    """A head's shape from its JSON (``head.json``, a ``.head.npz``'s config), the shipped head's
    values where it predates a key (heads saved before ``lstm_stride`` existed ran at 8)."""
    return {**HEAD, **json.loads(text)}


def head(cfg: dict, batch_size: int | None = None, teacher: dict | None = None, training: bool = True):
    """Backbone frames (B, T, 384) → (logits (B, T, classes), features (B, T, 120)).

    The teacher's neck without its attention: ``a`` and ``b`` (1 × 1 convolutions, swish) and
    ``c`` (a 1 × 7 depthwise convolution on ``b``, swish); where the teacher runs two attention
    blocks and a LayerNorm on ``b + c``, a BiLSTM of ``cfg["lstm"]`` units per direction and a
    linear map to 120; ``a`` added, as in the teacher; the classifier. With ``cfg["lstm_stride"]``
    16 the BiLSTM reads every pair of frames averaged (half the steps: its integer kernel is the
    slowest part of the head) and its linear map gives both frames of the pair; the classifier
    stays at W/8. With ``teacher`` (:func:`teacher_parts`) every layer the teacher has starts from
    its weights. ``training=False`` leaves the dropout out (the exported graph). ``tf_keras``
    (Keras 2): its LSTM at a fixed batch of 1 fuses into TFLite's ``UNIDIRECTIONAL_SEQUENCE_LSTM``
    and quantises to full int8 (see ``toolchain.crnn.model``)."""
    import tensorflow as tf
    import tf_keras as keras
    from tf_keras import layers

    pair = cfg["lstm_stride"] // STRIDE
    if pair not in (1, 2):
        raise ValueError(f"lstm_stride {cfg['lstm_stride']}: 8 or 16")
    inp = keras.Input((None, FEATURES), batch_size=batch_size, name="frames")
    a_layer = layers.Dense(120, activation="swish", name="neck_a")
    b_layer = layers.Dense(120, activation="swish", name="neck_b")
    c_layer = layers.DepthwiseConv1D(7, padding="same", activation="swish", name="neck_c")
    a, b = a_layer(inp), b_layer(inp)
    x = layers.Add(name="neck_bc")([b, c_layer(b)])
    if cfg["dropout"] and training:
        x = layers.Dropout(cfg["dropout"], name="drop")(x)
    if pair == 2:
        x = layers.AveragePooling1D(2, padding="same", name="pairs")(x)
    x = layers.Bidirectional(layers.LSTM(cfg["lstm"], return_sequences=True), name="bilstm")(x)
    x = layers.Dense(120 * pair, name="mix")(x)
    if pair == 2:
        x = layers.Reshape((-1, 120), name="unpair")(x)
        x = layers.Lambda(lambda t: t[0][:, : tf.shape(t[1])[1]], name="crop")([x, a])
    feats = layers.Add(name="features")([x, a])
    fc = layers.Dense(cfg["classes"], name="classifier")
    model = keras.Model(inp, [fc(feats), feats], name="crnn_head")
    if teacher is not None:
        a_layer.set_weights(list(teacher["a"]))
        b_layer.set_weights(list(teacher["b"]))
        c_layer.set_weights(list(teacher["c"]))
        fc.set_weights(list(teacher["fc"]))
    return model


def teacher_head_init(cols: np.ndarray | None = None) -> dict:
    """:func:`teacher_parts` with the classifier cut to the student's classes."""
    from edge_ocr.recognition.charset import Charset

    model, _, _ = teacher_graph()
    parts = teacher_parts(model)
    cols = class_map(model, Charset.load(CHARSET).symbols) if cols is None else cols
    w, b = parts["fc"]
    parts["fc"] = (w[:, cols], b[cols])
    return parts


def greedy_text(frame_ids: np.ndarray, symbols: list[str]) -> str:
    """Best-path CTC decoding of per-frame class ids (blank 0)."""
    out, prev = [], 0
    for c in frame_ids:
        if c != prev and c:
            out.append(symbols[c - 1])
        prev = c
    return "".join(out)


def evaluate(model, data: Frames, lines: np.ndarray, symbols: list[str]) -> dict[str, float]:
    """Greedy CER of the head on held-out lines: labelled ones against their text, unlabelled
    ones against the teacher's own reading (agreement)."""
    from toolchain.scoring import score

    refs: dict[bool, list[str]] = {True: [], False: []}
    hyps: dict[bool, list[str]] = {True: [], False: []}
    by_length: dict[int, list[int]] = {}
    for i in lines:
        by_length.setdefault(int(data.lengths[i]), []).append(int(i))
    for t, group in by_length.items():
        rows = data.starts[group][:, None] + np.arange(t)[None]
        best = model(data.feats[rows].astype(np.float32), training=False)[0].numpy().argmax(-1)
        teacher = np.take_along_axis(data.ids[rows], data.probs[rows].argmax(-1)[..., None], -1)[..., 0]
        for i, own, theirs in zip(group, best, teacher):
            unlabelled = not data.texts[i]
            refs[unlabelled].append(greedy_text(theirs, symbols) if unlabelled else data.texts[i])
            hyps[unlabelled].append(greedy_text(own, symbols))
    return {"val_cer_labelled": score(refs[False], hyps[False])["cer"] if refs[False] else float("nan"),
            "val_cer_vs_teacher": score(refs[True], hyps[True])["cer"] if refs[True] else float("nan")}


HINT_WEIGHT = 1.0  # mean squared error on the teacher's classifier input, per feature
INHERITED = ("neck_a", "neck_b", "neck_c", "classifier")  # layers that start from the teacher's weights
INHERITED_LR = 0.1  # their learning rate relative to the BiLSTM's: they are already right


def fit(model, data: Frames, train_lines: np.ndarray, val_lines: np.ndarray, out: Path, steps: int, lr: float,
        batch: int = 32, eval_every: int = 500, seed: int = 0, warmup: int = 200) -> None:
    """Train ``model`` (the head) on ``train_lines``: per line CTC on its text when it has one
    (divided by its frames) plus, weighted by ``data.distil``, the cross-entropy to the teacher's
    top classes per frame and the squared error to the teacher's classifier input (``HINT_WEIGHT``);
    the layers taken from the teacher learn at ``INHERITED_LR`` of the rate. Each batch holds
    lines of one length (no padding). Checkpoints in ``out/ckpt`` at every evaluation and on
    SIGTERM, resumed when present; ``history.csv`` and ``curve.png`` in ``out``."""
    import tensorflow as tf
    import tf_keras as keras
    from tqdm import tqdm

    from edge_ocr.recognition.charset import Charset
    from toolchain.crnn.train import lr_at, plot_history

    charset = Charset.load(CHARSET)
    by_length: dict[int, list[int]] = {}
    for i in train_lines:
        by_length.setdefault(int(data.lengths[i]), []).append(int(i))
    keys = sorted(by_length)
    weights = np.array([len(by_length[k]) for k in keys], float)
    opt = keras.optimizers.Adam(learning_rate=lr, clipnorm=5.0)
    step_var = tf.Variable(0, dtype=tf.int64)
    ckpt = tf.train.Checkpoint(model=model, optimizer=opt, step=step_var)
    manager = tf.train.CheckpointManager(ckpt, out / "ckpt", max_to_keep=2)
    if manager.latest_checkpoint:
        ckpt.restore(manager.latest_checkpoint)
        print(f"resumed from {manager.latest_checkpoint} at step {int(step_var.numpy())}", flush=True)

    inherited = {v.ref() for v in model.trainable_variables if v.name.split("/")[0] in INHERITED}

    @tf.function(reduce_retracing=True)
    def step(x, hint, ids, p, y, labelled, distil):
        with tf.GradientTape() as tape:
            logits, feats = model(x, training=True)
            logq = tf.nn.log_softmax(logits)
            kd = -tf.reduce_mean(tf.reduce_sum(p * tf.gather(logq, ids, batch_dims=2), -1), -1)
            mse = tf.reduce_mean(tf.square(feats - hint), [1, 2])
            t = tf.shape(logits)[1]
            ctc = tf.nn.ctc_loss(tf.sparse.from_dense(y), logits, None, tf.fill([tf.shape(y)[0]], t),
                                 logits_time_major=False, blank_index=0) / tf.cast(t, tf.float32)
            loss = tf.reduce_mean(distil * (kd + HINT_WEIGHT * mse) + labelled * ctc)
        grads = tape.gradient(loss, model.trainable_variables)
        grads = [g * INHERITED_LR if v.ref() in inherited else g for g, v in zip(grads, model.trainable_variables)]
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    history = start_history(out / "history.csv", "step,loss,val_cer_labelled,val_cer_vs_teacher,lr,elapsed_s")
    stop = stop_on_sigterm()
    s = int(step_var.numpy())
    rng = np.random.default_rng(seed + s)
    losses, t0 = [], time.time()
    bar = tqdm(total=steps, initial=s, desc="train head", unit="step", mininterval=10)
    while s < steps and not stop["now"]:
        opt.learning_rate.assign(lr_at(s, steps, lr, warmup=warmup))
        group = by_length[keys[rng.choice(len(keys), p=weights / weights.sum())]]
        lines = rng.choice(group, min(batch, len(group)), replace=False)
        loss = float(step(*[tf.constant(v) for v in data.batch(lines, charset.encode)]))
        if math.isfinite(loss):
            losses.append(loss)
        s += 1
        step_var.assign(s)
        bar.update(1)
        if s % eval_every == 0 or s == steps:
            m = evaluate(model, data, val_lines, charset.symbols) if len(val_lines) else {}
            cers = [f"{m[k]:.4f}" if k in m else "" for k in ("val_cer_labelled", "val_cer_vs_teacher")]
            row = [s, f"{np.mean(losses[-eval_every:]):.4f}", *cers, f"{lr_at(s, steps, lr):.2e}",
                   f"{time.time() - t0:.0f}"]
            with history.open("a") as f:
                f.write(",".join(map(str, row)) + "\n")
            tqdm.write(f"step {s}: loss {row[1]}" + "".join(f", {k} {v:.4f}" for k, v in m.items()))
            manager.save(checkpoint_number=s)
            plot_history(history, out / "curve.png", ("val_cer_labelled", "val_cer_vs_teacher"),
                         "CRNN student: loss and validation CER", "train loss (CTC + teacher CE)")
    manager.save(checkpoint_number=s)
    bar.close()
    model.save_weights(out / "head.weights.h5")
    print(f"stopped at step {s}; weights in {out / 'head.weights.h5'}", flush=True)


def train(args: argparse.Namespace) -> None:
    """The head on the cache, its inherited layers from the teacher, or from a saved head with
    ``--init`` (a new run only). ``head.json`` fixes the head's shape for the run: a run resumed
    with another ``--lstm``/``--lstm-stride`` is refused, not silently changed. Hints are added
    to chunks cached before they existed."""
    from edge_ocr.recognition.charset import Charset

    cfg_path = args.out / "head.json"
    asked = {k: v for k, v in (("lstm", args.lstm), ("lstm_stride", args.lstm_stride)) if v is not None}
    if cfg_path.exists():
        cfg = read_shape(cfg_path.read_text())
        differ = {k: v for k, v in asked.items() if cfg[k] != v}
        if differ:
            raise SystemExit(f"{args.out} holds a run of another head ({cfg_path}: {cfg}); asked {differ}: "
                             "give a new --out")
    else:
        cfg = {**HEAD, **asked, "classes": Charset.load(CHARSET).num_classes}
    if args.init:
        if (args.out / "ckpt").exists():
            raise SystemExit(f"--init starts a new run, but {args.out / 'ckpt'} holds one: give a new --out")
        weights, shape = load_head(args.init)
        differ = {k: shape[k] for k in ("lstm", "lstm_stride", "classes") if shape[k] != cfg[k]}
        if differ:
            raise SystemExit(f"--init {args.init}: its head has {differ}, this run's is {cfg}")
    args.out.mkdir(parents=True, exist_ok=True)
    if not cfg_path.exists():
        cfg_path.write_text(json.dumps(cfg))
    add_hints(args.out, args.threads)
    data = Frames.load(args.out)
    tr, va = data.split()
    model = head(cfg, teacher=teacher_head_init())
    if args.init:
        model.set_weights(weights)
    fit(model, data, tr, va, args.out, args.steps, args.lr, args.batch, args.eval_every, args.seed)


def backbone_model(graph: onnx.ModelProto | None = None):
    """The teacher's backbone rebuilt in ``tf_keras`` with its weights (input NHWC, height 48), or
    ``graph``'s (the backbone's ONNX graph with trained weights, :mod:`toolchain.crnn.joint`)."""
    import tempfile

    from toolchain.onnx_import.keras_rebuild import rebuild

    if graph is not None:
        return rebuild(graph, [graph.graph.output[0].name], channels=3, height=HEIGHT)
    model, _, features = teacher_graph()
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "teacher.onnx", Path(tmp) / "backbone.onnx"
        onnx.save(model, str(src))
        onnx.utils.extract_model(str(src), str(dst), [model.graph.input[0].name], [features])
        return rebuild(onnx.load(str(dst)), [features], channels=3, height=HEIGHT)


def save_head(weights: list[np.ndarray], cfg: dict, path: Path) -> None:
    """The head's weights (float16: half the size, no measurable change in the int8 model made
    from them) and shape in one ``.npz``: what fine-tuning starts from."""
    np.savez(path, config=json.dumps(cfg), **{f"w{i:02d}": w.astype(np.float16) for i, w in enumerate(weights)})


def load_head(path: Path) -> tuple[list[np.ndarray], dict]:
    """(weights as float32, shape) saved by :func:`save_head`."""
    d = np.load(path)
    weights = [d[k].astype(np.float32) for k in sorted(k for k in d.files if k.startswith("w"))]
    return weights, read_shape(str(d["config"]))


def student(weights: list[np.ndarray], cfg: dict, graph: onnx.ModelProto | None = None):
    """Backbone (the teacher's, or ``graph``'s: :func:`backbone_model`) + a head with ``weights``
    as one ``tf_keras`` model at batch 1: image (1, 48, W, 3) → logits (1, W/8, classes)."""
    import tensorflow as tf
    import tf_keras as keras
    from tf_keras import layers

    backbone = backbone_model(graph)
    top = head(cfg, batch_size=1, training=False)
    top.set_weights(weights)
    image = keras.Input((HEIGHT, None, 3), batch_size=1, name="image")
    frames = layers.Lambda(lambda t: tf.squeeze(t, 1), name="to_sequence")(backbone(image))
    return keras.Model(image, top(frames)[0], name=NAME)


def calibration(real: list[np.ndarray], count: int, seed: int = 0):
    """Representative inputs for int8: rendered train-split lines and real lines (half each, as
    many real ones as there are), as the runtime feeds them."""
    rng = random.Random(seed)
    picked = rng.sample(real, min(count // 2, len(real)))
    renderer = HandRenderer(seed + 10_000)
    lines = picked + [renderer.sample()[0] for _ in range(count - len(picked))]
    rng.shuffle(lines)

    def gen():
        for line in lines:
            yield [model_input(line.astype(np.float32))]

    return gen


def to_tflite(model, calib=None) -> bytes:
    """``model`` converted: full-integer int8 (int8 in and out) when ``calib`` is given, else float."""
    import contextlib

    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if calib is not None:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = calib
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    with contextlib.redirect_stdout(None):
        return conv.convert()


def write_tflite(model, path: Path, provenance: dict, calib=None) -> dict:
    """``model`` as TFLite at ``path`` (full-integer int8 when ``calib`` is given, else float),
    with its op audit, contract and the charset beside it; returns the audit summary."""
    import shutil

    from toolchain.crnn.export import audit, write_contract

    data = to_tflite(model, calib)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    text, summary = audit(path)
    path.with_suffix(".audit.md").write_text(text, encoding="utf-8")
    if not (path.parent / CHARSET.name).exists():
        shutil.copy(CHARSET, path.parent / CHARSET.name)
    quant = "full-integer int8 (int8 in/out, int16 LSTM cell state)" if calib is not None else "float32"
    write_contract(path, CHARSET.name, quant, HEIGHT, 3, STRIDE, NORMALISATION, {**provenance, "audit": summary})
    print(f"{path}: {path.stat().st_size / 1e6:.2f} MB; float ops: {summary['float_ops'] or 'none'}", flush=True)
    return summary


def export(args: argparse.Namespace) -> None:
    """Float (``--out``) and full-integer int8 (``--models``) TFLite of backbone + head, each with
    contract and op audit; the head's weights and shape go beside the int8 model, for
    fine-tuning (:func:`save_head`)."""
    cfg = read_shape((args.out / "head.json").read_text())
    trained = head(cfg)
    trained.load_weights(args.out / "head.weights.h5")
    weights = trained.get_weights()
    model = student(weights, cfg)
    path, description = resolve(TEACHER)
    hist = list(csv.DictReader((args.out / "history.csv").open()))
    provenance = {
        "source": f"distilled here from {description}: its convolutional backbone with weights unchanged "
                  "(frozen), a new BiLSTM and CTC classifier trained on its per-frame posteriors",
        "onnx_sha256": _sha256(path),
        "training": {"lines": "rendered train-split lines (handwriting faces, handright, camera degradations) "
                              "and real line crops of ../shared/unlabelled (no labels; the teacher's reading)",
                     "head": cfg, "steps": int(hist[-1]["step"]) if hist else 0, "final": hist[-1] if hist else {}},
        "converted_with": f"tensorflow {_dist_version('tensorflow-cpu')}, tf_keras {_dist_version('tf_keras')}",
        "licence": "Apache-2.0 (the teacher's backbone)",
        "upstream": "PaddlePaddle/PaddleOCR (https://github.com/PaddlePaddle/PaddleOCR)"}
    write_tflite(model, args.out / f"{NAME}_float.tflite", provenance)
    write_tflite(model, args.models / f"{NAME}_int8.tflite", provenance,
                 calibration(saved_real_lines(args.out), args.calib, args.seed))
    save_head(weights, cfg, args.models / f"{NAME}.head.npz")


def main() -> None:
    ap = distill_parser(__doc__, "build/rec_distill", batch=32, lr=2e-3)
    ap.add_argument("--real-views", type=int, default=4, help="times each real line is seen (1 as cut)")
    ap.add_argument("--chunks", type=int, default=10, help="chunks of rendered lines")
    ap.add_argument("--chunk", type=int, default=2000, help="rendered lines per chunk")
    ap.add_argument("--steps", type=int, default=4000, help="total steps of the head's schedule")
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--lstm", type=int, help=f"train, new run: BiLSTM units per direction ({HEAD['lstm']})")
    ap.add_argument("--lstm-stride", type=int, choices=(8, 16),
                    help=f"train, new run: input columns per BiLSTM step ({HEAD['lstm_stride']}; "
                         "16: frames paired, half the steps)")
    ap.add_argument("--init", type=Path,
                    help="train, new run: start the head from these weights (a .head.npz) instead of the teacher's")
    ap.add_argument("--calib", type=int, default=300, help="calibration lines for int8")
    run_step(ap, {"cache": cache, "train": train, "export": export})


if __name__ == "__main__":
    main()
