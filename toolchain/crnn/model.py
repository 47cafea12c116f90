"""The CRNN: convolutional features → bidirectional LSTM → per-frame classifier (CTC).

Built with ``tf_keras`` (Keras 2): its LSTM, exported with a fixed batch of 1, fuses into
TFLite's UNIDIRECTIONAL_SEQUENCE_LSTM and quantises to full int8, which Keras 3's does not.
The same function builds the training graph (any batch) and the export graph (batch 1);
weights move between them unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import tensorflow as tf
import tf_keras as keras
from tf_keras import layers


@dataclass(frozen=True)
class CRNNConfig:
    """Architecture knobs; saved with checkpoints so export rebuilds the same graph."""

    num_classes: int
    height: int = 32
    channels: tuple[int, ...] = (32, 64, 128, 128, 192, 192)
    lstm_units: int = 128
    time_downsample: int = 4

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> CRNNConfig:
        return cls(**{**d, "channels": tuple(d["channels"])})


def _conv(x: tf.Tensor, filters: int, kernel: tuple[int, int], name: str, padding: str = "same") -> tf.Tensor:
    x = layers.Conv2D(filters, kernel, padding=padding, use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def build_crnn(cfg: CRNNConfig, batch_size: int | None = None) -> keras.Model:
    """Input (B, H, W, 1) pixels 0..255, dark text on light; output (B, W/4, classes) logits."""
    if cfg.height != 32:
        raise ValueError("this CRNN layout pools height 32 → 1; other heights need another layout")
    c = cfg.channels
    inp = layers.Input((cfg.height, None, 1), batch_size=batch_size, name="image")
    x = layers.Rescaling(1 / 127.5, offset=-1.0, name="scale")(inp)
    x = _conv(x, c[0], (3, 3), "b1")
    x = layers.MaxPool2D((2, 2), name="p1")(x)  # 16 × W/2
    x = _conv(x, c[1], (3, 3), "b2")
    x = layers.MaxPool2D((2, 2), name="p2")(x)  # 8 × W/4
    x = _conv(x, c[2], (3, 3), "b3a")
    x = _conv(x, c[3], (3, 3), "b3b")
    x = layers.MaxPool2D((2, 1), name="p3")(x)  # 4 × W/4
    x = _conv(x, c[4], (3, 3), "b4a")
    x = _conv(x, c[5], (3, 3), "b4b")
    x = layers.MaxPool2D((2, 1), name="p4")(x)  # 2 × W/4
    x = _conv(x, 2 * cfg.lstm_units, (2, 1), "b5", padding="valid")  # 1 × W/4
    x = layers.Lambda(lambda t: tf.squeeze(t, axis=1), name="to_sequence")(x)
    x = layers.Bidirectional(layers.LSTM(cfg.lstm_units, return_sequences=True), name="bilstm")(x)
    out = layers.Dense(cfg.num_classes, name="classifier")(x)
    return keras.Model(inp, out, name="crnn")
