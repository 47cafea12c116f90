"""Train the CRNN with CTC on pre-rendered lines; checkpoints often and resumes.

    python -m toolchain.crnn.train --data data --run runs/crnn --steps 6000

Re-running the same command continues from the last checkpoint (step, weights, optimiser
and schedule). ``runs/<name>/history.csv`` and ``curve.png`` record loss and validation CER.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras
from tqdm import tqdm

from edge_ocr.recognition.charset import Charset
from edge_ocr.recognition.ctc import greedy, log_softmax
from toolchain.common import start_history, stop_on_sigterm
from toolchain.crnn.model import CRNNConfig, build_crnn
from toolchain.scoring import score
from toolchain.synth.dataset import load_split

BUCKET = 64


class Batches:
    """Random batches from one width bucket at a time, cropped to the bucket's width."""

    def __init__(self, images: np.ndarray, widths: np.ndarray, labels: list[str], charset: Charset,
                 batch: int, seed: int) -> None:
        self.images, self.batch = images, batch
        self.rng = np.random.default_rng(seed)
        self.encoded = [charset.encode(t) for t in labels]
        buckets = np.maximum(BUCKET, -(-widths // BUCKET) * BUCKET)
        self.groups = {int(b): np.nonzero(buckets == b)[0] for b in np.unique(buckets)}
        self.groups = {b: idx for b, idx in self.groups.items() if len(idx) >= batch}
        sizes = np.array([len(v) for v in self.groups.values()], float)
        self.keys, self.p = list(self.groups), sizes / sizes.sum()

    def __next__(self) -> tuple[np.ndarray, np.ndarray]:
        """(images (B, H, W, 1), labels (B, L) zero-padded; ids start at 1 so 0 is padding)."""
        width = self.keys[self.rng.choice(len(self.keys), p=self.p)]
        idx = np.sort(self.rng.choice(self.groups[width], self.batch, replace=False))
        x = self.images[idx, :, :width].astype(np.float32)[..., None]
        labs = [self.encoded[i] for i in idx]
        lab_len = np.array([len(v) for v in labs], np.int32)
        y = np.zeros((self.batch, max(1, lab_len.max())), np.int32)
        for i, v in enumerate(labs):
            y[i, : len(v)] = v
        return x, y


def lr_at(step: int, total: int, peak: float, warmup: int = 300) -> float:
    """Linear warm-up, then cosine decay to 5 % of the peak at ``total``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))


def decode_batch(logits: np.ndarray, charset: Charset) -> list[str]:
    return [charset.decode(greedy(log_softmax(row)).ids) for row in logits]


def evaluate(model: keras.Model, images: np.ndarray, widths: np.ndarray, labels: list[str],
             charset: Charset, limit: int | None = None) -> dict[str, float]:
    """Greedy-decoded CER of a Keras model on a rendered split, one width bucket at a time."""
    n = len(labels) if limit is None else min(limit, len(labels))
    hyps: list[str] = [""] * n
    buckets = np.maximum(BUCKET, -(-widths[:n] // BUCKET) * BUCKET)
    for b in np.unique(buckets):
        idx = np.nonzero(buckets == b)[0]
        for s in range(0, len(idx), 128):
            part = idx[s : s + 128]
            x = images[part, :, :b].astype(np.float32)[..., None]
            for i, text in zip(part, decode_batch(model(x, training=False).numpy(), charset)):
                hyps[i] = text
    return score(labels[:n], hyps)


def plot_history(history: Path, out: Path, cers: tuple[str, ...] = ("val_cer",),
                 title: str = "CRNN training: loss and validation CER", loss_label: str = "train CTC loss") -> None:
    """Loss (log scale) and each validation CER column of ``history`` against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(history.open()))
    if not rows:
        return
    steps = [int(r["step"]) for r in rows]
    fig, ax1 = plt.subplots(figsize=(8, 4.5))
    ax1.plot(steps, [float(r["loss"]) for r in rows], color="tab:blue", label=loss_label)
    ax1.set_xlabel("step")
    ax1.set_ylabel(loss_label, color="tab:blue")
    ax1.set_yscale("log")
    ax2 = ax1.twinx()
    top = 0.0
    for column, colour in zip(cers, ("tab:red", "tab:orange", "tab:green")):
        evals = [r for r in rows if r[column] and r[column] != "nan"]
        values = [float(r[column]) for r in evals]
        if not values:
            continue
        ax2.plot([int(r["step"]) for r in evals], values, color=colour, marker="o", label=column.replace("_", " "))
        top = max([top, *values])
    ax2.set_ylabel("validation CER")
    ax2.set_ylim(0, min(1.0, top * 1.1 + 0.01))
    ax2.legend(loc="upper right")
    ax1.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def train(args: argparse.Namespace) -> None:
    charset = Charset.load(args.charset)
    run = Path(args.run)
    run.mkdir(parents=True, exist_ok=True)
    cfg_path = run / "config.json"
    if cfg_path.exists():
        cfg = CRNNConfig.from_dict(json.loads(cfg_path.read_text())["model"])
    else:
        channels = tuple(int(c) for c in args.channels.split(","))
        cfg = CRNNConfig(num_classes=charset.num_classes, channels=channels, lstm_units=args.lstm_units)
        cfg_path.write_text(json.dumps({"model": cfg.to_dict(), "charset": str(args.charset)}, indent=2))
    if cfg.num_classes != charset.num_classes:
        raise SystemExit(f"{cfg_path}: model has {cfg.num_classes} classes, charset {charset.num_classes}")

    images, widths, labels = load_split(Path(args.data) / "train")
    if args.limit:
        images, widths, labels = images[: args.limit], widths[: args.limit], labels[: args.limit]
    images = np.ascontiguousarray(images)
    v_images, v_widths, v_labels = load_split(Path(args.data) / "val")
    batches = Batches(images, widths, labels, charset, args.batch,
                      seed=args.seed if args.seed is not None else int(time.time()))

    model = build_crnn(cfg)
    opt = keras.optimizers.Adam(learning_rate=args.lr, clipnorm=5.0)
    step_var = tf.Variable(0, dtype=tf.int64, name="step")
    ckpt = tf.train.Checkpoint(model=model, optimizer=opt, step=step_var)
    manager = tf.train.CheckpointManager(ckpt, run / "ckpt", max_to_keep=2)
    if manager.latest_checkpoint:
        ckpt.restore(manager.latest_checkpoint).expect_partial()
        print(f"resumed from {manager.latest_checkpoint} at step {int(step_var.numpy())}", flush=True)
    elif args.init:
        # Warm start from shipped float weights (runs/ does not travel between machines; models/ does).
        model.load_weights(args.init)
        print(f"initialised from {args.init}", flush=True)

    @tf.function(input_signature=[
        tf.TensorSpec((None, cfg.height, None, 1), tf.float32),
        tf.TensorSpec((None, None), tf.int32),
    ])
    def train_step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            t = tf.fill([tf.shape(logits)[0]], tf.shape(logits)[1])
            # Sparse labels select TF's C++ CTC kernel on CPU; dense ones fall back to a slower
            # graph implementation (measured here: 41 vs 32 lines/s). Ids are ≥ 1, so zero padding drops out.
            loss = tf.reduce_mean(tf.nn.ctc_loss(tf.sparse.from_dense(y), logits, None, t,
                                                 logits_time_major=False, blank_index=0))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    history = start_history(run / "history.csv", "step,loss,val_cer,val_line_acc,lr,elapsed_s")
    stop = stop_on_sigterm()
    start_step = int(step_var.numpy())
    last_save = time.time()
    t0 = time.time()
    losses: list[float] = []
    bar = tqdm(total=args.steps, initial=start_step, desc="train", unit="step", mininterval=10)
    step = start_step
    while step < args.steps and not stop["now"]:
        opt.learning_rate.assign(lr_at(step, args.steps, args.lr))
        x, y = next(batches)
        loss = float(train_step(x, y))
        if math.isfinite(loss):
            losses.append(loss)
        step += 1
        step_var.assign(step)
        bar.update(1)
        if step % 20 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}", lr=f"{lr_at(step, args.steps, args.lr):.1e}")
        is_eval = step % args.eval_every == 0 or step == args.steps
        if is_eval or step % args.log_every == 0:
            m = evaluate(model, v_images, v_widths, v_labels, charset, limit=args.val_limit) if is_eval else None
            val = f"{m['cer']:.4f},{m['line_acc']:.4f}" if m else ","
            with history.open("a") as f:
                f.write(f"{step},{np.mean(losses[-args.log_every:]):.4f},{val},"
                        f"{lr_at(step, args.steps, args.lr):.2e},{time.time() - t0:.0f}\n")
            if m:
                tqdm.write(f"step {step}: val CER {m['cer']:.4f}, line acc {m['line_acc']:.3f}")
                plot_history(history, run / "curve.png")
        if time.time() - last_save > args.save_minutes * 60 or step % args.eval_every == 0:
            manager.save(checkpoint_number=step)
            last_save = time.time()
    manager.save(checkpoint_number=step)
    bar.close()
    model.save_weights(run / "final.weights.h5")
    print(f"stopped at step {step}; weights in {run / 'final.weights.h5'}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data")
    ap.add_argument("--run", default="runs/crnn")
    ap.add_argument("--charset", default="models/charset_zh_en.txt")
    ap.add_argument("--steps", type=int, default=6000, help="total steps of the schedule")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lstm-units", type=int, default=128)
    ap.add_argument("--channels", default="32,64,128,128,192,192", help="six conv widths (new runs only)")
    ap.add_argument("--seed", type=int, default=None, help="batch order seed (default: time, so resumes differ)")
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--log-every", type=int, default=50, help="steps between loss rows in history.csv")
    ap.add_argument("--val-limit", type=int, default=1000)
    ap.add_argument("--save-minutes", type=float, default=5.0)
    ap.add_argument("--init", default=None, help="float weights (.weights.h5) to start a new run from")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N training lines")
    train(ap.parse_args())


if __name__ == "__main__":
    main()
