from pathlib import Path

import pytest

from edge_ocr.paths import ROOT
from edge_ocr.recognition.charset import Charset


def test_shipped_charset_round_trips_mixed_text() -> None:
    cs = Charset.load(ROOT / "models" / "charset_zh_en.txt")
    text = "第3题：F=ma，速度 v=s/t。Hello"
    ids = cs.encode(text)
    assert cs.blank not in ids
    assert cs.decode(ids) == text
    assert cs.num_classes == len(cs.symbols) + 1
    assert " " in cs


def test_unknown_character_is_named() -> None:
    cs = Charset(["a", "b"])
    with pytest.raises(KeyError, match="'z'"):
        cs.encode("abz")
    assert cs.filter("azb") == "ab"


def test_malformed_and_duplicate_charsets_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("a\nbc\n", encoding="utf-8")
    with pytest.raises(ValueError, match="exactly one character"):
        Charset.load(bad)
    with pytest.raises(ValueError, match="duplicate"):
        Charset(["a", "b", "a"])
