"""Charset shared by the toolchain and the runtime: one symbol per line, CTC blank at index 0.

The file holds one symbol per line (a line may be a single space). Index 0 of the model's
output is the CTC blank, so symbol ``i`` in the file is class ``i + 1``.
"""

from __future__ import annotations

from pathlib import Path


class Charset:
    """Maps text to class ids and back; the blank (id 0) is never a symbol."""

    blank = 0

    def __init__(self, symbols: list[str]) -> None:
        if len(set(symbols)) != len(symbols):
            dupes = sorted({s for s in symbols if symbols.count(s) > 1})
            raise ValueError(f"charset has duplicate symbols: {dupes[:10]}")
        self.symbols = symbols
        self._index = {s: i + 1 for i, s in enumerate(symbols)}

    @classmethod
    def load(cls, path: str | Path) -> Charset:
        text = Path(path).read_text(encoding="utf-8")
        if text.endswith("\n"):
            text = text[:-1]
        symbols = text.split("\n")
        if any(len(s) != 1 for s in symbols):
            bad = [s for s in symbols if len(s) != 1][:5]
            raise ValueError(f"{path}: every line must hold exactly one character, got {bad!r}")
        return cls(symbols)

    @property
    def num_classes(self) -> int:
        """Number of model outputs: the symbols plus the blank."""
        return len(self.symbols) + 1

    def __contains__(self, ch: str) -> bool:
        return ch in self._index

    def encode(self, text: str) -> list[int]:
        """Class ids for ``text``; raises on a character the model cannot emit."""
        missing = [c for c in text if c not in self._index]
        if missing:
            raise KeyError(f"characters not in charset: {''.join(sorted(set(missing)))!r}")
        return [self._index[c] for c in text]

    def filter(self, text: str) -> str:
        """``text`` without the characters the charset lacks (for building labels)."""
        return "".join(c for c in text if c in self._index)

    def decode(self, ids: list[int]) -> str:
        return "".join(self.symbols[i - 1] for i in ids if i != self.blank)
