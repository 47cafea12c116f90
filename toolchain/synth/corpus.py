"""Text sources for synthetic lines, all from Debian/PyPI packages already on the host.

Sources are split into train and test by a stable hash of each source sentence, so the
held-out test split never renders a sentence that training saw.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from edge_ocr.recognition.charset import Charset

FORTUNES = Path("/usr/share/games/fortunes")
ZH_FORTUNES = ("chinese.u8", "tang300.u8", "song100.u8")
EN_FORTUNES = (
    "fortunes.u8", "literature.u8", "riddles.u8", "education.u8", "science.u8", "kids.u8",
    "food.u8", "people.u8", "humorists.u8", "platitudes.u8", "songs-poems.u8", "computers.u8",
)
WORDS = Path("/usr/share/dict/words")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
ZH_SPLIT = re.compile(r"(?<=[。！？；，：])")
SUBJECT_WORDS = (
    "数学", "语文", "英语", "物理", "化学", "生物", "历史", "地理", "政治", "作业", "练习", "复习", "预习", "考试",
    "单元", "课文", "方程", "函数", "三角形", "面积", "周长", "体积", "速度", "加速度", "质量", "电压", "电流", "电阻",
    "功率", "能量", "密度", "实验", "结论", "原理", "定理", "公式", "证明", "已知", "求解", "答案", "例题", "习题",
    "第一题", "第二题", "步骤", "注意",
)
FORMULAS = (
    "F=ma", "E=mc^2", "v=s/t", "P=UI", "U=IR", "a^2+b^2=c^2", "S=πr^2", "ρ=m/V",
    "y=kx+b", "sin30°=0.5", "x1+x2=-b/a", "W=Fs", "Q=cmΔt", "pH=7", "H2O", "CO2",
    "2H2+O2=2H2O", "f(x)=x^2-1", "(a+b)^2", "√2≈1.414", "1/2+1/3=5/6", "90°", "45%",
)


def _stable_bucket(text: str) -> int:
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:8], 16) % 100


def _read_fortunes(name: str) -> list[str]:
    raw = ANSI.sub("", (FORTUNES / name).read_text(encoding="utf-8", errors="ignore"))
    return [entry.strip() for entry in raw.split("\n%\n") if entry.strip()]


def _zh_sentences(entries: list[str]) -> list[str]:
    out = []
    for entry in entries:
        for line in entry.split("\n"):
            line = re.sub(r"\s+", "", line)
            if line.startswith("--") or line.startswith("作者"):
                continue
            for piece in ZH_SPLIT.split(line):
                if len(piece) >= 3 and re.search(r"[\u4e00-\u9fff]", piece):
                    out.append(piece)
    return out


def _en_sentences(entries: list[str]) -> list[str]:
    out = []
    for entry in entries:
        flat = re.sub(r"\s+", " ", entry).strip()
        for piece in re.split(r"(?<=[.!?;:])\s+", flat):
            if len(piece) >= 4 and piece.isascii():
                out.append(piece)
    return out


@dataclass
class Corpus:
    """Sentences and words for one split ("train" or "test")."""

    zh: list[str]
    en: list[str]
    words_en: list[str]
    charset: Charset
    zh_chars: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, split: str, charset: Charset) -> Corpus:
        if split not in ("train", "test"):
            raise ValueError(f"split must be train or test, got {split!r}")

        def keep(text: str) -> bool:
            held_out = _stable_bucket(text) < 10
            return held_out if split == "test" else not held_out

        zh = [s for s in _zh_sentences([e for n in ZH_FORTUNES for e in _read_fortunes(n)]) if keep(s)]
        en = [s for s in _en_sentences([e for n in EN_FORTUNES for e in _read_fortunes(n)]) if keep(s)]
        words = [w for w in WORDS.read_text(encoding="utf-8", errors="ignore").split() if w.isascii() and "'" not in w]
        words = [w for w in words if keep(w)]
        zh_chars = [c for c in charset.symbols if "\u4e00" <= c <= "\u9fff"]
        return cls(zh=zh, en=en, words_en=words, charset=charset, zh_chars=zh_chars)


class TextSampler:
    """Draws one line of text of a kind suited to a classroom board or notebook."""

    def __init__(self, corpus: Corpus, rng: random.Random) -> None:
        self.c = corpus
        self.rng = rng
        self.kinds = (
            (self.zh_snippet, 0.38),
            (self.zh_rare, 0.07),
            (self.en_snippet, 0.22),
            (self.en_words, 0.08),
            (self.mixed, 0.25),
        )

    def sample(self) -> str:
        r = self.rng.random()
        for fn, p in self.kinds:
            if r < p:
                text = fn()
                break
            r -= p
        else:
            text = self.mixed()
        text = re.sub(r"\s+", " ", self.c.charset.filter(text)).strip()
        return text or self.zh_rare()

    def _snippet(self, source: list[str], lo: int, hi: int) -> str:
        s = self.rng.choice(source)
        n = self.rng.randint(lo, hi)
        if len(s) <= n:
            return s
        start = self.rng.randint(0, len(s) - n)
        return s[start : start + n]

    def zh_snippet(self) -> str:
        return self._snippet(self.c.zh, 2, 14)

    def zh_rare(self) -> str:
        return "".join(self.rng.choice(self.c.zh_chars) for _ in range(self.rng.randint(2, 10)))

    def en_snippet(self) -> str:
        words = self.rng.choice(self.c.en).split(" ")
        n = self.rng.randint(1, 7)
        start = self.rng.randint(0, max(0, len(words) - n))
        return " ".join(words[start : start + n])

    def en_words(self) -> str:
        words = [self.rng.choice(self.c.words_en) for _ in range(self.rng.randint(1, 4))]
        if self.rng.random() < 0.3:
            words[0] = words[0].capitalize()
        return " ".join(words)

    def mixed(self) -> str:
        rng = self.rng
        choice = rng.random()
        if choice < 0.2:
            y, m, d = rng.randint(1990, 2035), rng.randint(1, 12), rng.randint(1, 28)
            return rng.choice((f"{y}年{m}月{d}日", f"{y}-{m:02d}-{d:02d}", f"{m}/{d}/{y}", f"{y}.{m}.{d}"))
        if choice < 0.4:
            return rng.choice(FORMULAS) + rng.choice(("", "，", "。", " ")) + rng.choice(SUBJECT_WORDS)
        if choice < 0.55:
            n = rng.choice((str(rng.randint(0, 99999)), f"{rng.uniform(0, 1000):.2f}", f"{rng.randint(1, 99)}%"))
            return rng.choice(("第{}题", "共{}元", "{}kg", "{}cm", "No.{}", "约{}人", "{}")).format(n)
        if choice < 0.75:
            return rng.choice(SUBJECT_WORDS) + rng.choice(("：", ":", " ")) + self.en_snippet()
        word = rng.choice(self.c.words_en)
        return self._snippet(self.c.zh, 2, 8) + rng.choice(("(", "（", " ")) + word + rng.choice((")", "）", ""))
