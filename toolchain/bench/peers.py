"""The peers we measure against, on the same line crops: Tesseract 5 (Debian package) and the
PaddleOCR PP-OCRv4 mobile / PP-OCRv6 small recognisers (ONNX files shipped inside the
``rapidocr_onnxruntime`` 1.4.4 and ``rapidocr`` 3.10.0 wheels, run here with onnxruntime).

Host only: the runtime never imports this. The rapidocr wheels are installed without their
dependencies, only for their ONNX files; PP-OCR's own pre- and post-processing is re-done
here (height 48, width ≥ 320 or the line's own, (x/255 − 0.5)/0.5, CTC greedy decoding with
the charset from the ONNX metadata).
"""

from __future__ import annotations

import importlib.util
import math
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from toolchain.common import ort_session

PPOCR = {
    "PP-OCRv4 mobile": ("rapidocr_onnxruntime", "models/ch_PP-OCRv4_rec_infer.onnx"),
    "PP-OCRv6 small": ("rapidocr", "models/PP-OCRv6_rec_small.onnx"),
}


class PeerMissingError(RuntimeError):
    """A peer engine is not installed (the message says how to get it)."""


def package_file(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)  # finds, does not import (the wheels' deps are absent)
    if spec is None or not spec.submodule_search_locations:
        raise PeerMissingError(f"pip install --no-deps {package} (for its ONNX recogniser)")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise PeerMissingError(f"{path} missing from the {package} wheel")
    return path


class PaddleRecognizer:
    """A PP-OCR text-line recogniser (ONNX), one line at a time, like ours in the benchmark."""

    def __init__(self, name: str, threads: int = 1) -> None:
        package, relative = PPOCR[name]
        self.name, self.path = name, package_file(package, relative)
        self.session = ort_session(self.path, threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        self.charset = ["<blank>", *meta["character"].splitlines(), " "]
        self.input = self.session.get_inputs()[0].name

    def prepare(self, image: np.ndarray) -> np.ndarray:
        bgr = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        h, w = bgr.shape[:2]
        target_w = max(320, math.ceil(48 * w / max(1, h)))
        resized_w = min(target_w, math.ceil(48 * w / max(1, h)))
        x = cv2.resize(bgr[:, :, :3], (max(1, resized_w), 48)).astype(np.float32) / 255.0
        x = (x - 0.5) / 0.5
        out = np.zeros((1, 3, 48, target_w), np.float32)
        out[0, :, :, :resized_w] = x.transpose(2, 0, 1)
        return out

    def recognize(self, image: np.ndarray) -> tuple[str, float]:
        """(text, milliseconds of inference and decoding)."""
        x = self.prepare(image)
        t0 = time.perf_counter()
        probs = self.session.run(None, {self.input: x})[0][0]
        ids = probs.argmax(axis=1)
        chars, prev = [], 0
        for i in ids:
            if i != prev and i != 0 and i < len(self.charset):
                chars.append(self.charset[i])
            prev = i
        return "".join(chars), (time.perf_counter() - t0) * 1000


class TesseractRecognizer:
    """Tesseract 5 on lines (``--psm 7``), Chinese + English. ``recognize`` is one process per
    line (start-up and model loading included, as a caller of the command pays them);
    ``recognize_many`` runs one process over a list of lines and splits its time evenly, which
    is Tesseract at its best."""

    def __init__(self, langs: str = "chi_sim+eng") -> None:
        exe = shutil.which("tesseract")
        if exe is None:
            raise PeerMissingError("apt install tesseract-ocr tesseract-ocr-chi-sim")
        have = subprocess.run([exe, "--list-langs"], capture_output=True, text=True).stdout.split()
        missing = [lang for lang in langs.split("+") if lang not in have]
        if missing:
            raise PeerMissingError(f"tesseract languages missing: {missing} (apt install tesseract-ocr-chi-sim)")
        self.exe, self.langs, self.name = exe, langs, "Tesseract 5"
        self._tmp = tempfile.TemporaryDirectory()

    def recognize(self, image: np.ndarray) -> tuple[str, float]:
        path = Path(self._tmp.name) / "line.png"
        cv2.imwrite(str(path), image)
        t0 = time.perf_counter()
        r = subprocess.run([self.exe, str(path), "stdout", "-l", self.langs, "--psm", "7"], capture_output=True,
                           env={"OMP_THREAD_LIMIT": "1", "PATH": "/usr/bin:/bin"})
        ms = (time.perf_counter() - t0) * 1000
        return r.stdout.decode("utf-8", "replace").strip(), ms

    def recognize_many(self, images: list[np.ndarray]) -> tuple[list[str], float]:
        """(texts, milliseconds per line) from one tesseract process over all ``images``."""
        d = Path(self._tmp.name)
        paths = []
        for i, image in enumerate(images):
            paths.append(d / f"many_{i:04d}.png")
            cv2.imwrite(str(paths[-1]), image)
        (d / "list.txt").write_text("\n".join(str(p) for p in paths) + "\n")
        t0 = time.perf_counter()
        r = subprocess.run([self.exe, str(d / "list.txt"), "stdout", "-l", self.langs, "--psm", "7"],
                           capture_output=True, env={"OMP_THREAD_LIMIT": "1", "PATH": "/usr/bin:/bin"})
        ms = (time.perf_counter() - t0) * 1000 / max(1, len(images))
        texts = [t.strip() for t in r.stdout.decode("utf-8", "replace").split("\f")][: len(images)]
        return texts + [""] * (len(images) - len(texts)), ms


def available(threads: int = 1) -> tuple[list, list[str]]:
    """(the peers that could be set up, a note for each that could not)."""
    peers, notes = [], []
    for make in (lambda: TesseractRecognizer(), *(lambda n=n: PaddleRecognizer(n, threads) for n in PPOCR)):
        try:
            peers.append(make())
        except (PeerMissingError, ImportError) as exc:
            notes.append(str(exc))
    return peers, notes
