"""Decontamination scan throughput: the stage's vectorized n-gram hashing against a per-n-gram Python loop.

Documents: WikiText-2 and TinyStories text (English) plus Chinese poetry (song ci), regrouped into ~2.5 KB
pieces; 1 % of them get an evaluation text planted (verbatim or upper-cased). Evaluation texts: SST-2 dev
and test sentences, CoNLL-2003 test sentences (words joined by spaces) and 200 Tang poems. Both systems
use the same normalization (``dedup.text.simplify``), word 13-grams, CJK character 50-grams and whole
evaluation texts of 8-12 words (20-49 characters), and must flag exactly the same documents:
- ours: ``pipeline.decontaminate.shards.mark`` (numpy window hashes, one ``searchsorted`` per batch);
- baseline: the usual loop (datatrove's ``NGramsDecontFilter`` style): split each normalized document into
  words, build every n-gram string, hash it with xxh64 and look it up in a Python set.
Rounds are interleaved so load from other processes hits both alike; medians are reported. Besides the
planted texts, one WikiText piece (repeated to fill the document count) is flagged on its own: it quotes an
SST-2 test sentence ("... throw 100 years of cinematic history down the toilet ...").

    python bench/decontaminate_speed.py          # ~1 minute
    python bench/decontaminate_speed.py --long   # more documents and rounds
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

import xxhash

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.corpora import datasets_dir, english_lines, pieces  # noqa: E402
from pipeline.decontaminate import DecontaminateConfig, spec_of  # noqa: E402
from pipeline.decontaminate.index import build_index  # noqa: E402
from pipeline.decontaminate.ngrams import unspaced_chars  # noqa: E402
from pipeline.decontaminate.shards import mark  # noqa: E402
from pipeline.dedup.text import simplify  # noqa: E402

TARGETS = {"target_mb_per_s_per_core": 4.0, "target_speedup": 3.0}


def load(n_docs: int) -> tuple[list[str], list[tuple[str, list[str]]], dict[int, str]]:
    d = datasets_dir()
    ci = json.loads((d / "chinese_poetry/songci/ci.song.0.json").read_text())
    zh = ["".join(p["paragraphs"]) for p in ci]
    docs = pieces(english_lines()) + pieces(zh, 1500)
    random.Random(0).shuffle(docs)
    docs = (docs * (n_docs // len(docs) + 1))[:n_docs]
    sst = [ln.split("\t", 1)[1] for f in ("dev.tsv", "test.tsv")
           for ln in (d / "sst2" / f).read_text().splitlines()[1:]]
    conll = [" ".join(w.split()[0] for w in s.splitlines())
             for s in (d / "conll2003/test.txt").read_text().split("\n\n") if s.strip()]
    poems = json.loads((d / "chinese_poetry/tangshi/poet.tang.0.json").read_text())[:200]
    tang = ["".join(p["paragraphs"]) for p in poems]
    sources = [("sst2:test", sst), ("conll:test", conll), ("tang:test", tang)]
    rng = random.Random(1)
    flat = sst + conll + tang
    planted = {}
    for i in rng.sample(range(len(docs)), len(docs) // 100):
        planted[i] = rng.choice(flat)
        text = planted[i].upper() if rng.random() < 0.5 else planted[i]
        docs[i] = docs[i][:1000] + " " + text + " " + docs[i][1000:]
    return docs, sources, planted


def protected(text: str, cfg: DecontaminateConfig) -> bool:
    """Long enough to be matched: SST-2 has many sentences under ``min_words`` words, left unprotected."""
    return len(simplify(text).split()) >= cfg.min_words or len(unspaced_chars(text)) >= cfg.min_chars


class NaiveIndex:
    """Every n-gram (and whole short text) as an xxh64 of its string, in a Python set."""

    def __init__(self, sources: list[tuple[str, list[str]]], cfg: DecontaminateConfig):
        self.cfg, self.keys, self.word_lens, self.char_lens = cfg, set(), set(), set()
        for _, texts in sources:
            for t in texts:
                self._add(simplify(t).decode().split(), cfg.word_ngram, cfg.min_words, self.word_lens, " ")
                self._add(list(unspaced_chars(t).tobytes().decode("utf-32-le")), cfg.char_ngram, cfg.min_chars,
                          self.char_lens, "")

    def _add(self, toks: list[str], n: int, lo: int, lens: set[int], sep: str) -> None:
        if len(toks) >= n:
            lens.add(n)
            self.keys.update(xxhash.xxh64_intdigest(sep.join(toks[i:i + n]).encode()) for i in range(len(toks) - n + 1))
        elif len(toks) >= lo:
            lens.add(len(toks))
            self.keys.add(xxhash.xxh64_intdigest(sep.join(toks).encode()))

    def contaminated(self, text: str) -> bool:
        for toks, lens, sep in ((simplify(text).decode().split(), self.word_lens, " "),
                                (list(unspaced_chars(text).tobytes().decode("utf-32-le")), self.char_lens, "")):
            for k in lens:
                for i in range(len(toks) - k + 1):
                    if xxhash.xxh64_intdigest(sep.join(toks[i:i + k]).encode()) in self.keys:
                        return True
        return False


def timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--long", action="store_true", help="4x the documents, 5 rounds")
    args = ap.parse_args()
    n_docs, rounds = (16000, 5) if args.long else (4000, 3)
    cfg = DecontaminateConfig()
    docs, sources, planted = load(n_docs)
    expected = sorted(i for i, t in planted.items() if protected(t, cfg))
    mb = sum(len(t.encode()) for t in docs) / 1e6
    t_index, index = timed(lambda: build_index(sources, spec_of(cfg)))
    t_naive_index, naive = timed(lambda: NaiveIndex(sources, cfg))
    print(f"{len(docs):,} docs, {mb:.1f} MB; {sum(len(t) for _, t in sources):,} eval texts -> {len(index.keys):,} "
          f"n-grams (index {t_index:.2f}s, naive set {t_naive_index:.2f}s)")
    rates: dict[str, list[float]] = {"ours": [], "naive": []}
    flagged: dict[str, list[int]] = {}
    for r in range(rounds):
        secs, marks = timed(lambda: mark(docs, index))
        rates["ours"].append(mb / secs)
        flagged["ours"] = [i for i, m in enumerate(marks) if m is not None]
        secs, hits = timed(lambda: [naive.contaminated(t) for t in docs])
        rates["naive"].append(mb / secs)
        flagged["naive"] = [i for i, h in enumerate(hits) if h]
        print(f"round {r + 1}: ours {rates['ours'][-1]:.2f} MB/s  naive {rates['naive'][-1]:.2f} MB/s")
    med = {k: statistics.median(v) for k, v in rates.items()}
    agree = flagged["ours"] == flagged["naive"]
    found = set(expected) <= set(flagged["ours"])
    print(f"ours {med['ours']:.2f} MB/s/core, naive loop {med['naive']:.2f} MB/s/core, speedup "
          f"{med['ours'] / med['naive']:.1f}x; {len(flagged['ours'])} documents flagged, same set: {agree}; "
          f"{len(planted)} planted, {len(expected)} of them long enough to protect, all found: {found}")
    result = {
        "bench": "decontaminate_speed", "docs": len(docs), "mb": round(mb, 2), "eval_ngrams": int(len(index.keys)),
        "flagged_docs": len(flagged["ours"]), "planted_docs": len(planted), "planted_protected": len(expected),
        "planted_protected_found": found, "same_flagged_set": agree,
        "mb_per_s_per_core": round(med["ours"], 2), "index_seconds": round(t_index, 3),
        "baseline": "per-n-gram string + xxh64 + Python set (datatrove-style loop), same normalization",
        "baseline_mb_per_s_per_core": round(med["naive"], 2), "baseline_index_seconds": round(t_naive_index, 3),
        "speedup": round(med["ours"] / med["naive"], 2), "load_average": round(os.getloadavg()[0], 2),
        **TARGETS,
        "met": agree and found and med["ours"] >= TARGETS["target_mb_per_s_per_core"]
        and med["ours"] / med["naive"] >= TARGETS["target_speedup"],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
