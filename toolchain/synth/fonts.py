"""Fonts from Debian packages, split into training and held-out test fonts.

Each entry is (path, face index in a .ttc). The test fonts are never used for training,
so the test split measures generalisation to unseen type faces and hands.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from fontTools.ttLib import TTFont

T = "/usr/share/fonts/truetype"
OT = "/usr/share/fonts/opentype"

# Noto CJK .ttc face order: JP, KR, SC, TC, HK, then the Mono faces; 2 is SC.
CJK_TRAIN = [
    (f"{OT}/noto/NotoSansCJK-Regular.ttc", 2),
    (f"{OT}/noto/NotoSansCJK-Bold.ttc", 2),
    (f"{OT}/noto/NotoSerifCJK-Regular.ttc", 2),
    (f"{OT}/noto/NotoSerifCJK-Bold.ttc", 2),
    (f"{T}/wqy/wqy-zenhei.ttc", 0),
    (f"{T}/arphic/uming.ttc", 0),
    (f"{T}/arphic/ukai.ttc", 0),
    (f"{T}/lxgw-wenkai/LXGWWenKai-Regular.ttf", 0),
    (f"{T}/lxgw-wenkai/LXGWWenKai-Bold.ttf", 0),
    (f"{T}/lxgw-wenkai/LXGWWenKai-Light.ttf", 0),
    (f"{T}/smiley-sans/SmileySans-Oblique.ttf", 0),
    (f"{T}/klee/KleeOne-Regular.ttf", 0),
    (f"{T}/klee/KleeOne-SemiBold.ttf", 0),
]
CJK_TEST = [
    (f"{T}/wqy/wqy-microhei.ttc", 0),
    (f"{T}/arphic-gbsn00lp/gbsn00lp.ttf", 0),
    (f"{T}/arphic-gkai00mp/gkai00mp.ttf", 0),
]
LATIN_TRAIN = [
    (f"{T}/dejavu/DejaVuSans.ttf", 0),
    (f"{T}/dejavu/DejaVuSans-Bold.ttf", 0),
    (f"{T}/dejavu/DejaVuSerif.ttf", 0),
    (f"{T}/dejavu/DejaVuSansMono.ttf", 0),
    (f"{T}/liberation2/LiberationSans-Regular.ttf", 0),
    (f"{T}/liberation2/LiberationSans-Bold.ttf", 0),
    (f"{T}/liberation2/LiberationSans-Italic.ttf", 0),
    (f"{T}/liberation2/LiberationSerif-Regular.ttf", 0),
    (f"{T}/liberation2/LiberationSerif-Italic.ttf", 0),
    (f"{OT}/comic-neue/ComicNeue-Regular.otf", 0),
    (f"{OT}/comic-neue/ComicNeue-Bold.otf", 0),
    (f"{OT}/comic-neue/ComicNeue-Italic.otf", 0),
    (f"{T}/fifthhorseman/dkg.ttf", 0),
    (f"{T}/fifthhorseman/dkgBd.ttf", 0),
    (f"{T}/humor-sans/Humor-Sans.ttf", 0),
    (f"{T}/breip/Breip.ttf", 0),
    (f"{T}/femkeklaver/femkeklaver.ttf", 0),
    (f"{T}/kristi/Kristi.ttf", 0),
    (f"{T}/rufscript/Rufscript010.ttf", 0),
]
LATIN_TEST = [
    (f"{T}/liberation2/LiberationMono-Regular.ttf", 0),
    (f"{T}/liberation2/LiberationSerif-BoldItalic.ttf", 0),
    (f"{OT}/comic-neue/ComicNeue-Light.otf", 0),
    (f"{T}/fifthhorseman/dkgIt.ttf", 0),
]
HANDWRITING = {"ukai", "WenKai", "Klee", "gkai", "Comic", "dkg", "Humor", "Breip", "femke", "Kristi", "Ruf"}


@dataclass(frozen=True)
class FontSpec:
    path: str
    index: int

    @property
    def handwriting(self) -> bool:
        return any(tag in self.path for tag in HANDWRITING)


@cache
def coverage(path: str, index: int) -> frozenset[str]:
    """Characters the face can draw, read from its cmap (PIL draws tofu otherwise)."""
    font = TTFont(path, fontNumber=index, lazy=True)
    cmap = font.getBestCmap() or {}
    return frozenset(chr(cp) for cp in cmap)


def fonts_for(split: str) -> tuple[list[FontSpec], list[FontSpec]]:
    """(cjk, latin) fonts of a split, keeping only those installed."""
    cjk, latin = (CJK_TEST, LATIN_TEST) if split == "test" else (CJK_TRAIN, LATIN_TRAIN)
    missing = [p for p, _ in cjk + latin if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(f"fonts missing (install the Debian font packages, see Makefile): {missing}")
    return [FontSpec(p, i) for p, i in cjk], [FontSpec(p, i) for p, i in latin]
