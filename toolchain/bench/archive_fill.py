"""Fill an archive with N synthetic board lines fast (the store's bulk path) and time searches.

Lines are Chinese (characters drawn Zipf-like from a pool of common ones, 6-16 a line) or
English (3-7 words from a science vocabulary and a long tail of rarer made-up words), so a query
meets common and rare terms as on real boards. Used to check search stays within its budget
(≤ 100 ms p95 over 1 million lines) on each engine:

    .venv/bin/python -m toolchain.bench.archive_fill --database /tmp/a.sqlite3 --lines 1000000
    .venv/bin/python -m toolchain.bench.archive_fill --database postgresql://… --lines 1000000
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from edge_ocr.archive.store import Store, open_store

POOL = ("的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面"
        "而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好"
        "应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道"
        "命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长"
        "求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色"
        "光热声电磁波能量速度加速牛顿定律光合叶绿素细胞分裂遗传基因函数方程积分导数极限向量矩阵概率统计")
WORDS = ("energy", "force", "mass", "velocity", "acceleration", "photosynthesis", "chlorophyll", "cell", "membrane",
         "nucleus", "gene", "protein", "enzyme", "equation", "function", "derivative", "integral", "limit", "vector",
         "matrix", "probability", "theorem", "proof", "lemma", "graph", "circuit", "current", "voltage", "resistance",
         "magnetic", "field", "wave", "frequency", "light", "photon", "electron", "atom", "molecule", "reaction",
         "oxygen", "carbon", "hydrogen", "water", "temperature", "pressure", "volume", "density", "newton", "law",
         "motion", "gravity", "orbit", "planet", "homework", "exam", "chapter", "page", "exercise", "answer",
         "question", "example", "note", "remember", "important", "today", "tomorrow")
PHRASES = ("光合作用", "牛顿第二定律", "细胞分裂", "加速度")
QUERIES = ("力", "光合", "第二定律", "energy", "photo", "homework exam", "xqzv")


def lines(n: int, seed: int = 0) -> list[str]:
    """``n`` synthetic board lines (deterministic for a seed)."""
    rng = random.Random(seed)
    zipf = [1.0 / (k + 1) ** 0.8 for k in range(len(POOL))]
    tail = [f"w{rng.randrange(36 ** 4):x}" for _ in range(20000)]
    out = []
    for _ in range(n):
        if rng.random() < 0.6:
            line = "".join(rng.choices(POOL, zipf, k=rng.randint(6, 16)))
            if rng.random() < 0.01:  # a phrase a teacher writes now and then
                line = line[:4] + rng.choice(PHRASES) + line[4:]
            out.append(line)
        else:
            out.append(" ".join(rng.choice(WORDS) if rng.random() < 0.7 else rng.choice(tail)
                                for _ in range(rng.randint(3, 7))))
    return out


def fill(store: Store, n: int, devices: int = 10, chunk: int = 50_000, start_ts: float = 1.7e9) -> float:
    """Bulk-store ``n`` lines spread over ``devices`` boards; seconds taken."""
    t0 = time.perf_counter()
    for k in range(0, n, chunk):
        part = lines(min(chunk, n - k), seed=k)
        store.bulk_lines(f"bench-{(k // chunk) % devices}", part, start_ts + k)  # type: ignore[attr-defined]
    return time.perf_counter() - t0


def time_searches(store: Store, runs: int = 20) -> dict[str, tuple[float, float, int]]:
    """Per query: (p50 ms, p95 ms, hits) over ``runs`` runs (the first one warms the cache)."""
    out = {}
    for q in QUERIES:
        store.search(q)
        ms = []
        for _ in range(runs):
            t0 = time.perf_counter()
            hits = store.search(q)
            ms.append((time.perf_counter() - t0) * 1000)
        ms.sort()
        out[q] = (statistics.median(ms), ms[min(len(ms) - 1, int(0.95 * len(ms)))], len(hits))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--database", required=True, help="SQLite path or postgresql:// URL")
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    store = open_store(args.database)
    have = store.stats()["spans"]
    if have < args.lines:
        print(f"filling {args.lines - have} lines ...", flush=True)
        print(f"filled in {fill(store, args.lines - have):.1f} s", flush=True)
    stats = store.stats()
    print(f"{store.engine}: {stats['spans']} lines, {stats['bytes'] / 1e6:.0f} MB")
    print(f"{'query':<16}{'p50 ms':>8}{'p95 ms':>8}{'hits':>6}")
    for q, (p50, p95, hits) in time_searches(store, args.runs).items():
        print(f"{q:<16}{p50:>8.1f}{p95:>8.1f}{hits:>6}")
    store.close()


if __name__ == "__main__":
    main()
