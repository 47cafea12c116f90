"""Search terms, plans, match offsets and ranking (edge_ocr/archive/search.py)."""

from __future__ import annotations

from edge_ocr.archive.search import matches, normalise, plan, score, terms_of


def test_terms_are_cjk_unigrams_bigrams_and_latin_words():
    assert terms_of("光合作用 Photo-synthesis 2x") == {"光", "合", "作", "用", "光合", "合作", "作用",
                                                    "photo", "synthesis", "2x"}
    assert terms_of("F＝ma，力") == {"f", "ma", "力"}  # fullwidth forms folded (NFKC)


def test_plans():
    assert plan("力").exact == ("力",)
    assert plan("光合作").exact == ("光合", "合作")
    p = plan("Photo")
    assert (p.exact, p.prefixes) == ((), ("photo",))
    p = plan("newton law")
    assert (p.exact, p.prefixes) == (("newton",), ("law",))
    assert plan(" ，。 ") is None


def hits(text: str, query: str) -> list[tuple[int, int]]:
    norm, where = normalise(text)
    return matches(text, plan(query), norm, where)


def test_match_offsets_are_in_the_original_text():
    assert hits("光合作用和光合速率", "光合") == [(0, 2), (5, 7)]
    assert hits("ＡＢＣ  def", "abc d") == [(0, 6)]  # fullwidth ABC, two spaces read as one
    assert hits("photosynthesis", "synthesis") == []  # a Latin word matches from a word's start
    assert hits("F=ma", "ma") == [(2, 4)]


def test_ranking_prefers_the_whole_line_then_whole_words_then_short_lines():
    def s(text: str, query: str, recency: float = 0.0) -> float:
        norm, where = normalise(text)
        p = plan(query)
        return score(text, norm, p, matches(text, p, norm, where), recency)

    exact, word, prefix = s("energy", "energy"), s("the energy of a body", "energy"), s("energetic", "energ")
    assert exact > word > prefix
    assert s("力的作用", "力") > s("力的作用与反作用的大小相等", "力")  # fewer other characters
    assert s("a force", "force", recency=1.0) > s("a force", "force", recency=0.0)


def test_a_line_of_a_million_characters_is_indexed_in_linear_time():
    """Field report: a line of 2,000,000 characters stalled the archive for minutes (the term
    runs were built by repeated concatenation: quadratic, about 47 s for a million characters
    here). Linear, it takes a fraction of a second; 10 s tells the two apart on any machine."""
    import time

    t0 = time.process_time()
    terms = terms_of("光合" * 500_000 + " word" * 3)
    assert terms == {"光", "合", "光合", "合光", "word"}
    assert time.process_time() - t0 < 10.0
