"""A lighter DB text detector: PP-OCRv4 mobile det's backbone, kept frozen, under a new small
neck and head distilled from the whole teacher's probability maps.

Why: the teacher spends 1.3 of its 2.0 G multiply-adds per 448 × 800 tile in its FPN neck and DB
head (two 3 × 3, 96 → 24 convolutions at quarter resolution alone are 0.93 G) and holds a
224 × 400 × 24 map for its transposed convolutions. The student keeps the backbone (0.74 G, the
part that learnt what strokes look like) with its weights, and replaces the rest by 1 × 1
lateral convolutions, a top-down path, depthwise-separable fusion at quarter resolution and a
sub-pixel (depth-to-space) output at full resolution: the same input and output contract,
0.19 G (0.92 G in all); its own DB thresholds (``POSTPROCESS``, chosen on the dev set).

Steps (``make distill-det``; the teacher and the backbone come from the ``rapidocr_onnxruntime``
wheel, Apache-2.0):

    python -m toolchain.distill.detector cache  --out build/det_distill     # teacher maps + features
    python -m toolchain.distill.detector train  --out build/det_distill     # the head, resumable
    python -m toolchain.distill.detector export --out build/det_distill --models models

The training images are the unlabelled real photos (``../shared/unlabelled``, which exist for
distillation) and rendered board scenes from the *train* split of fonts and texts, each seen
as several random crops at the sizes the runtime feeds the detector, after the runtime's own
local-contrast step. The targets are the teacher's maps on exactly those crops. The dev set is
never used here: it judges the result (``make bench-pages``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import onnx

from edge_ocr.vision.detector import local_contrast
from toolchain.common import distill_parser, ort_session, run_step
from toolchain.onnx_import.detector import (
    PHOTO_SUFFIXES,
    audit_and_contract,
    fix_input,
    normalise,
    resolve,
    scalar_constants,
)
from toolchain.onnx_import.recognizer import ImportFailedError, _dist_version, _sha256, saved_model, simplify

HEIGHT, WIDTH = 448, 800
# The backbone's four outputs (strides 4, 8, 16, 32) are the inputs of the neck's four lateral
# 1 × 1 convolutions, named here as they are in PP-OCRv4 mobile det's graph after onnx-simplifier.
LATERAL_CONVS = ("p2o.Conv.33", "p2o.Conv.34", "p2o.Conv.35", "p2o.Conv.36")
FEATURES, STRIDES, CHANNELS = ("c2", "c3", "c4", "c5"), (4, 8, 16, 32), (48, 96, 192, 384)
TEACHER_SHA256 = "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9"
RING, RING_WEIGHT = 9, 5.0  # pixels around text regions, and their weight in the loss
SHARPEN = 0.5  # share of the target that is the teacher's thresholded region
# Chosen on the whole real dev set with the trained student (line-matched page CER, all 16 pages):
# 0.3 / 0.35 / 1.35 gives 0.092 (worst board page 0.29), 0.3 / 0.4 / 1.4 0.096 (0.32) and the
# teacher's 0.3 / 0.45 / 1.45 0.124 (0.33: a chalk line's box scores under 0.45). The student's
# map is a little softer than the teacher's.
POSTPROCESS = {"thresh": 0.3, "box_thresh": 0.35, "unclip_ratio": 1.35}


def teacher_graph() -> tuple[onnx.ModelProto, str, list[str]]:
    """The teacher at the fixed tile size, its description and its backbone's output tensors."""
    path, description = resolve("ppocrv4_det")
    if _sha256(path) != TEACHER_SHA256:
        raise ImportFailedError(f"{path}: not the PP-OCRv4 mobile det this student was built on")
    model = onnx.load(str(path))
    fix_input(model, HEIGHT, WIDTH)
    model = simplify(model)
    scalar_constants(model)
    nodes = {n.name: n for n in model.graph.node}
    missing = [n for n in LATERAL_CONVS if n not in nodes]
    if missing:
        raise ImportFailedError(f"lateral convolutions {missing} not in the simplified teacher graph")
    return model, description, [nodes[n].input[0] for n in LATERAL_CONVS]


def backbone_graph(teacher: onnx.ModelProto, outputs: list[str]) -> onnx.ModelProto:
    """Input → the four backbone outputs, cut from the teacher (its weights unchanged)."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "teacher.onnx", Path(tmp) / "backbone.onnx"
        onnx.save(teacher, str(src))
        onnx.utils.extract_model(str(src), str(dst), [teacher.graph.input[0].name], outputs)
        return onnx.load(str(dst))


def random_tile(image: np.ndarray, rng: random.Random) -> np.ndarray:
    """A HEIGHT × WIDTH uint8 crop as the runtime would feed it: the image turned by a quarter or
    half turn now and then, scaled so its long side is 560-1200 px (the runtime's 800, and text
    larger and smaller than that), turned up to ±12°,
    light, blur, noise and JPEG varied, local contrast applied; padding is the mean colour."""
    turn = rng.choices((None, cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_90_COUNTERCLOCKWISE, cv2.ROTATE_180),
                       (0.65, 0.15, 0.1, 0.1))[0]
    if turn is not None:  # vertical columns and upside-down pages are text too (few photos hold them)
        image = cv2.rotate(image, turn)
    h, w = image.shape[:2]
    s = rng.uniform(560, 1200) / max(h, w)
    img = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        angle = rng.uniform(-12, 12)
        ih, iw = img.shape[:2]
        m = cv2.getRotationMatrix2D((iw / 2, ih / 2), angle, 1.0)
        img = cv2.warpAffine(img, m, (iw, ih), borderMode=cv2.BORDER_REPLICATE)
    ih, iw = img.shape[:2]
    y0, x0 = rng.randint(0, max(0, ih - HEIGHT)), rng.randint(0, max(0, iw - WIDTH))
    crop = img[y0:y0 + HEIGHT, x0:x0 + WIDTH].astype(np.float32)
    crop = crop * rng.uniform(0.75, 1.2) + rng.uniform(-25, 25)
    if rng.random() < 0.3:
        crop = cv2.GaussianBlur(crop, (0, 0), rng.uniform(0.5, 1.3))
    if rng.random() < 0.4:
        crop += np.random.default_rng(rng.randint(0, 2**31)).normal(0, rng.uniform(2, 7), crop.shape)
    crop = np.clip(crop, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        _, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, rng.randint(60, 92)])
        crop = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    tile = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
    tile[: crop.shape[0], : crop.shape[1]] = local_contrast(crop)
    return tile


def source_images(photos: Path, scenes: int, seed: int) -> list[tuple[str, np.ndarray]]:
    """(name, BGR image): every photo under ``photos`` and ``scenes`` rendered train-split boards."""
    from toolchain.synth.scenes import SceneRenderer

    out = []
    for f in sorted(p for p in photos.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES):
        image = cv2.imread(str(f))
        if image is not None:
            out.append((f.name, image))
    if not out:
        raise ImportFailedError(f"no photos under {photos}")
    renderer = SceneRenderer("train", seed)
    for i in range(scenes):
        out.append((f"scene{i:03d}", renderer.render().frame))
    return out


def cache(args: argparse.Namespace) -> None:
    """Teacher maps (uint8, full resolution) and backbone features (float16, NHWC) for random
    tiles of every source image: ``tiles.npz`` in ``--out``."""
    from tqdm import tqdm

    teacher, _, outputs = teacher_graph()
    for name in outputs:
        teacher.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    sess = ort_session(teacher, args.threads)
    rng = random.Random(args.seed)
    images = source_images(args.photos, args.scenes, args.seed)
    n = len(images) * args.tiles
    feats = [np.zeros((n, HEIGHT // s, WIDTH // s, c), np.float16) for s, c in zip(STRIDES, CHANNELS)]
    maps = np.zeros((n, HEIGHT, WIDTH), np.uint8)
    groups = np.zeros(n, np.int32)
    i, input_name = 0, sess.get_inputs()[0].name
    for k, (_, image) in enumerate(tqdm(images, desc="teacher maps", unit="image")):
        for _ in range(args.tiles):
            x = normalise(random_tile(image, rng)).transpose(2, 0, 1)[None]
            out = sess.run(None, {input_name: x})
            maps[i] = np.round(out[0][0, 0] * 255).astype(np.uint8)
            for f, o in zip(feats, out[1:]):
                f[i] = o[0].transpose(1, 2, 0)
            groups[i] = k
            i += 1
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez(args.out / "tiles.npz", maps=maps, groups=groups, **dict(zip(FEATURES, feats)))
    print(f"{n} tiles from {len(images)} images → {args.out / 'tiles.npz'}")


def head(width: int = 32):
    """The student's neck and head on the backbone's four outputs (NHWC) → (1, H, W, 1) probability.

    Lateral 1 × 1 convolutions to ``width`` channels and a top-down path (FPN); each level
    refined by a depthwise-separable 3 × 3 convolution and brought to quarter resolution; the
    concatenation fused by two depthwise-separable convolutions; 16 channels rearranged into
    4 × 4 pixels each (depth-to-space), a sigmoid.
    """
    import keras
    import tensorflow as tf
    from keras import layers

    def up(x, factor: int, name: str):
        # tf.image.resize → RESIZE_NEAREST_NEIGHBOR (XNNPACK runs it); Keras' UpSampling2D becomes TILE.
        return layers.Lambda(lambda t: tf.image.resize(t, (t.shape[1] * factor, t.shape[2] * factor),
                                                       method="nearest"), name=name)(x)

    def sep(x, ch: int, name: str):
        x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"{name}_dw")(x)
        x = layers.BatchNormalization(name=f"{name}_dwbn")(x)
        x = layers.Conv2D(ch, 1, use_bias=False, name=f"{name}_pw")(x)
        x = layers.BatchNormalization(name=f"{name}_pwbn")(x)
        return layers.ReLU(name=f"{name}_relu")(x)

    inputs = [keras.Input((HEIGHT // s, WIDTH // s, c), name=name) for name, s, c in zip(FEATURES, STRIDES, CHANNELS)]
    lateral = [layers.Conv2D(width, 1, name=f"lat{k}")(x) for k, x in enumerate(inputs, start=2)]
    top = lateral[3]
    levels = [top]
    for k in (2, 1, 0):
        top = layers.Add(name=f"td{k + 2}")([lateral[k], up(top, 2, f"up_td{k + 2}")])
        levels.insert(0, top)
    fused = []
    for k, x in enumerate(levels):
        x = sep(x, width // 2, f"p{k + 2}")
        if k:
            x = up(x, 2 ** k, f"up_p{k + 2}")
        fused.append(x)
    x = layers.Concatenate(name="fuse")(fused)
    x = sep(x, width, "f1")
    x = sep(x, width, "f2")
    x = layers.Conv2D(16, 1, name="subpixel")(x)
    x = layers.Lambda(lambda t: tf.nn.depth_to_space(t, 4), name="to_pixels")(x)
    prob = layers.Activation("sigmoid", name="prob")(x)
    return keras.Model(inputs, prob, name="db_student_head")


def _split(groups: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation tile indices, split by source image (a tenth of the images held out)."""
    ids = np.unique(groups)
    held = set(np.random.default_rng(seed).choice(ids, max(1, len(ids) // 10), replace=False).tolist())
    val = np.array([g in held for g in groups])
    return np.flatnonzero(~val), np.flatnonzero(val)


def train(args: argparse.Namespace) -> None:
    """Train the head on the cached features (BCE + dice against the teacher's map, half of it
    replaced by the teacher's thresholded region: ``SHARPEN``); a checkpoint
    every epoch (``head.weights.h5``), resumed from when it exists; ``history.json`` per epoch."""
    import tensorflow as tf

    data = np.load(args.out / "tiles.npz")
    feats = [data[k] for k in FEATURES]
    maps, groups = data["maps"], data["groups"]
    tr, va = _split(groups, args.seed)
    model = head(args.width)
    ckpt, hist_path = args.out / "head.weights.h5", args.out / "history.json"
    history = json.loads(hist_path.read_text()) if hist_path.exists() and ckpt.exists() else []
    if history:
        model.load_weights(ckpt)
    steps_per_epoch = len(tr) // args.batch
    total = args.epochs * steps_per_epoch
    sched = tf.keras.optimizers.schedules.CosineDecay(args.lr, total, alpha=0.02)
    opt = tf.keras.optimizers.Adam(sched)
    opt.iterations.assign(len(history) * steps_per_epoch)

    def loss_fn(y: tf.Tensor, p: tf.Tensor) -> tf.Tensor:
        p = tf.clip_by_value(p, 1e-6, 1 - 1e-6)
        # The ring around each text region weighs RING_WEIGHT × more: the gaps between close lines
        # and words are few pixels, and a gap the student fills merges two boxes.
        text = tf.cast(y > POSTPROCESS["thresh"], tf.float32)
        # Half of the target is the teacher's text region itself, to pull the student's softer map
        # toward the teacher's edges: copying the map alone drew boxes 3 px lower than the
        # teacher's on 48-px text, where the recogniser read a lone 'x' as 'X' (MODEL_CARD).
        y = (1 - SHARPEN) * y + SHARPEN * text
        ring = tf.nn.max_pool2d(text, RING, 1, "SAME") - text
        w = 1 + RING_WEIGHT * ring
        bce = -tf.reduce_sum(w * (y * tf.math.log(p) + (1 - y) * tf.math.log(1 - p))) / tf.reduce_sum(w)
        inter = tf.reduce_sum(y * p, axis=[1, 2, 3])
        dice = 1 - (2 * inter + 1) / (tf.reduce_sum(y, axis=[1, 2, 3]) + tf.reduce_sum(p, axis=[1, 2, 3]) + 1)
        return bce + 0.5 * tf.reduce_mean(dice)

    @tf.function(reduce_retracing=True)
    def step(xs, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(xs, training=True))
        opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    def batch(idx: np.ndarray):
        xs = [tf.constant(f[idx].astype(np.float32)) for f in feats]
        y = tf.constant((maps[idx].astype(np.float32) / 255)[..., None])
        return xs, y

    rng = np.random.default_rng(args.seed + len(history))
    for epoch in range(len(history), args.epochs):
        t0, losses = time.time(), []
        order = rng.permutation(tr)
        for b in range(steps_per_epoch):
            losses.append(float(step(*batch(order[b * args.batch:(b + 1) * args.batch]))))
        val_loss, agree = [], []
        for b in range(0, len(va), args.batch):
            xs, y = batch(va[b:b + args.batch])
            p = model(xs, training=False)
            val_loss.append(float(loss_fn(y, p)))
            ty, tp = y.numpy() > POSTPROCESS["thresh"], p.numpy() > POSTPROCESS["thresh"]
            agree.append((ty & tp).sum() / max(1, (ty | tp).sum()))
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_loss": float(np.mean(val_loss)),
                        "val_text_iou": float(np.mean(agree)), "seconds": round(time.time() - t0, 1)})
        model.save_weights(ckpt)
        hist_path.write_text(json.dumps(history, indent=1))
        print(json.dumps(history[-1]), flush=True)


def compose(backbone: onnx.ModelProto, model, quantise: bool = True) -> bytes:
    """One TFLite detector: ``backbone`` (ONNX, input → four NCHW feature maps) through onnx2tf
    (whose SavedModel gives them NHWC), then the Keras ``model`` on its outputs; int8 weights with
    float activations when ``quantise``. The outputs are matched to the head's inputs by channel
    count."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "calibration_image_sample_data_20x128x128x3_float32.npy",
                np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32))
        loaded = tf.saved_model.load(str(saved_model(backbone, Path(tmp))))
        fn = loaded.signatures["serving_default"]
        by_channels = {int(spec.shape[-1]): k for k, spec in fn.structured_outputs.items()}
        if sorted(by_channels) != sorted(CHANNELS):
            raise ImportFailedError(f"backbone outputs {fn.structured_outputs} are not NHWC with {CHANNELS} channels")
        in_name = next(iter(fn.structured_input_signature[1]))

        @tf.function(input_signature=[tf.TensorSpec([1, HEIGHT, WIDTH, 3], tf.float32, name="image")])
        def detector(image):
            out = fn(**{in_name: image})
            return model([out[by_channels[c]] for c in CHANNELS], training=False)

        conv = tf.lite.TFLiteConverter.from_concrete_functions([detector.get_concrete_function()], loaded)
        if quantise:
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
        with contextlib.redirect_stdout(None):
            return conv.convert()


def export(args: argparse.Namespace) -> None:
    """Backbone (onnx2tf from the teacher's own graph) + trained head → one TFLite with int8
    weights, its contract, audit and provenance."""
    teacher, description, outputs = teacher_graph()
    model = head(args.width)
    model.load_weights(args.out / "head.weights.h5")
    hist = json.loads((args.out / "history.json").read_text())
    data = compose(backbone_graph(teacher, outputs), model)
    args.models.mkdir(parents=True, exist_ok=True)
    tfl = args.models / f"{args.name}.tflite"
    tfl.write_bytes(data)
    provenance = {
        "source": f"distilled here from {description}: its backbone with weights unchanged, a new neck and head",
        "onnx_sha256": TEACHER_SHA256,  # teacher_graph checked it
        "training": {"images": "../shared/unlabelled (124 real photos, no labels) and rendered train-split "
                               "board scenes; targets: the teacher's maps on the same crops",
                     "epochs": len(hist), "final": hist[-1], "head_width": args.width},
        "converted_with": f"onnx2tf {_dist_version('onnx2tf')}, tensorflow {_dist_version('tensorflow-cpu')}",
        "licence": "Apache-2.0 (the teacher's backbone)",
        "upstream": "PaddlePaddle/PaddleOCR (https://github.com/PaddlePaddle/PaddleOCR)"}
    summary = audit_and_contract(tfl, "dynamic range: int8 weights, float32 activations (no calibration)",
                                 HEIGHT, WIDTH, provenance, POSTPROCESS)
    print(f"{tfl}: {tfl.stat().st_size / 1e6:.2f} MB; {sum(summary['ops'].values())} ops")


def main() -> None:
    ap = distill_parser(__doc__, "build/det_distill", batch=8, lr=3e-3)
    ap.add_argument("--scenes", type=int, default=80, help="rendered train-split board scenes")
    ap.add_argument("--tiles", type=int, default=6, help="random tiles per image")
    ap.add_argument("--width", type=int, default=32, help="channels of the student's neck")
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--name", default="db_lite_int8")
    run_step(ap, {"cache": cache, "train": train, "export": export})


if __name__ == "__main__":
    main()
