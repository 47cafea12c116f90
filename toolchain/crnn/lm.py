"""Build the character bigram LM from the training split of the package corpora.

    python -m toolchain.crnn.lm --out models/lm_zh_en.npz
"""

from __future__ import annotations

import argparse
import itertools
import random
from collections import Counter
from pathlib import Path

import numpy as np

from edge_ocr.recognition.charset import Charset
from toolchain.synth.corpus import Corpus, TextSampler


def build(charset: Charset, lam: float = 0.7, samples: int = 200_000, min_count: int = 2, seed: int = 0) -> dict:
    corpus = Corpus.load("train", charset)
    sampler = TextSampler(corpus, random.Random(seed))
    texts = corpus.zh + corpus.en + [sampler.sample() for _ in range(samples)]
    uni: Counter[int] = Counter()
    bi: Counter[int] = Counter()
    c = charset.num_classes
    for t in texts:
        ids = charset.encode(charset.filter(t))
        uni.update(ids)
        bi.update(a * c + b for a, b in itertools.pairwise(ids))
    counts = np.ones(c, np.float64)  # add-one: every symbol stays possible
    for k, v in uni.items():
        counts[k] += v
    counts[0] = 0
    p_uni = counts / counts.sum()
    keys = np.array([k for k, v in bi.items() if v >= min_count], np.int64)
    cab = np.array([bi[k] for k in keys], np.float64)
    ca = counts[keys // c]
    p = lam * cab / ca + (1 - lam) * p_uni[keys % c]
    with np.errstate(divide="ignore"):
        unigram_logp = np.log(p_uni).astype(np.float32)
    return {"unigram_logp": unigram_logp, "pair_keys": keys, "pair_logp": np.log(p).astype(np.float16),
            "lam": np.float32(lam)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--charset", type=Path, default=Path("models/charset_zh_en.txt"))
    ap.add_argument("--out", type=Path, default=Path("models/lm_zh_en.npz"))
    ap.add_argument("--lam", type=float, default=0.7)
    a = ap.parse_args()
    lm = build(Charset.load(a.charset), a.lam)
    np.savez_compressed(a.out, **lm)
    print(f"{a.out}: {len(lm['pair_keys'])} bigrams, {a.out.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
