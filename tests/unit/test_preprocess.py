import cv2
import numpy as np
import pytest

from edge_ocr.recognition.preprocess import input_tensor, normalize_line, pad_to, stretch_contrast


def _line(dark_on_light: bool = True) -> np.ndarray:
    img = np.full((60, 300), 200, np.uint8)
    cv2.putText(img, "Hello 123", (5, 45), cv2.FONT_HERSHEY_SIMPLEX, 1.4, 40, 3)
    return img if dark_on_light else 255 - img


def test_height_fixed_aspect_kept_width_rounded() -> None:
    out = normalize_line(_line(), height=32, multiple=4)
    assert out.shape[0] == 32
    assert out.shape[1] % 4 == 0
    assert abs(out.shape[1] - 300 * 32 / 60) <= 4
    assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 255


def test_light_text_on_dark_is_inverted_to_dark_on_light() -> None:
    a = normalize_line(_line(True), 32)
    b = normalize_line(_line(False), 32)
    assert np.median(b) > 200, "background must come out light"
    assert np.abs(a - b).mean() < 10


def test_faint_text_is_stretched_to_full_range() -> None:
    faint = (_line().astype(np.float32) * 0.1 + 170).astype(np.uint8)
    out = stretch_contrast(faint)
    assert out.min() < 30 and np.median(out) > 220


def test_too_wide_lines_are_squeezed_and_padding_is_background() -> None:
    wide = np.tile(_line(), (1, 8))
    out = normalize_line(wide, 32, max_width=400)
    assert out.shape[1] == 400
    padded = pad_to(normalize_line(_line(), 32), 400)
    assert padded.shape == (32, 400) and (padded[:, -20:] == 255).all()


def test_empty_image_is_refused() -> None:
    with pytest.raises(ValueError):
        normalize_line(np.zeros((0, 10), np.uint8), 32)


def test_input_tensor_fills_every_channel_and_pads_with_background() -> None:
    """The one builder of a model's input: a 3-channel model gets the grey line on all three
    channels (LM tuning once filled only channel 0), padding and spare batch rows are background,
    and the contract's scale and offset are applied."""
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 256, (48, w)).astype(np.float32) for w in (40, 64))
    x = input_tensor([a, b], 72, 3, 1 / 127.5, -1.0, batch=3)
    assert x.shape == (3, 48, 72, 3) and x.dtype == np.float32
    assert np.array_equal(x[..., 0], x[..., 1]) and np.array_equal(x[..., 0], x[..., 2])
    np.testing.assert_allclose(x[0, :, :40, 1], a / 127.5 - 1.0, atol=1e-6)
    np.testing.assert_allclose(x[1, :, :64, 2], b / 127.5 - 1.0, atol=1e-6)
    assert np.all(x[0, :, 40:] == 1.0) and np.all(x[2] == 1.0)  # 255 → 1.0: background
