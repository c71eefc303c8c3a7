"""Clean stage throughput: the whole stage (``run()``, workers=1) against a naive filter chain.

Documents: TinyStories and WikiText-2 (test + valid) text regrouped into ~2.5 KB pieces (several
groupings, shifted, so that the pieces differ), written as docs shards of 2,000 documents. The
baseline, about ten times slower, runs on the first 1,000 of them (a rate is a rate).
- ours: ``pipeline.clean.run`` with the default config, fresh output and attribute-cache folders every
  round (so attributes are computed, never served from the cache): read, normalize, compute every
  attribute, apply the rules, write the output shards, the reports and the histogram PNG;
- baseline: the straightforward way, in the style of a datatrove filter chain: the same normalization
  done step by step with str methods and regexes, then one function per rule that re-tokenizes the
  text itself (``split``, ``splitlines``, n-gram strings in a ``Counter``, Gopher's while-loop scan),
  stopping at the first failed rule, and the same output shards. It computes no attribute columns, no
  script, no cache and no reports.
"Per core" is documents per CPU-second of this process (``time.process_time``): with workers=1 the
stage runs in this process, and on a shared machine CPU time is what one core spent, while the wall
clock also counts time spent waiting for a core (printed too). Rounds are interleaved so load from
other processes hits both alike; medians are reported.

    python bench/clean_speed.py          # ~2 minutes on 2 shared cores
    python bench/clean_speed.py --long   # more documents and rounds
"""
from __future__ import annotations

import sys
from pathlib import Path

# Put the repo root where the script's own folder would be: a bench/tokenize.py would otherwise shadow
# the standard library's tokenize module (which numpy imports through inspect).
ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)

import argparse
import json
import os
import re
import shutil
import statistics
import tempfile
import time
import unicodedata
from collections import Counter

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from bench.corpora import datasets_dir  # noqa: E402
from pipeline import documents  # noqa: E402
from pipeline.clean import CleanConfig, attributes, run  # noqa: E402
from pipeline.stage import StageContext  # noqa: E402
from pipeline.store import Manifest  # noqa: E402

TARGET = 2000  # documents per second per core
DOCS_PER_SHARD = 2000


def make_docs(n_docs: int) -> list[str]:
    d = datasets_dir()
    parts = [p.strip("\n") for p in (d / "tinystories_slice/tinystories_val_head.txt").read_text().split("\n\n")]
    for name in ("test.txt", "valid.txt"):
        parts += (d / "wikitext2_tokenized" / name).read_text().split("\n")
    parts = [p for p in parts if p.strip()]
    docs: list[str] = []
    shift = 0
    while len(docs) < n_docs:  # each pass groups the paragraphs differently
        cur: list[str] = []
        target = 2300 + (shift * 97) % 400
        for p in parts[shift * 13 % len(parts):] + parts[:shift * 13 % len(parts)]:
            cur.append(p)
            if sum(map(len, cur)) >= target:
                docs.append("\n\n".join(cur))
                cur = []
                if len(docs) == n_docs:
                    break
        shift += 1
    return docs


def write_upstream(folder: Path, docs: list[str]) -> Manifest:
    (folder / "docs").mkdir(parents=True)
    for s, start in enumerate(range(0, len(docs), DOCS_PER_SHARD)):
        rows = [{"doc_id": f"bench/{i}", "text": t, "source": "bench", "meta": "{}"}
                for i, t in enumerate(docs[start:start + DOCS_PER_SHARD], start)]
        documents.write_table(documents.docs_table(rows), folder / documents.shard_name(s))
    return Manifest(stage="ingest", key="bench", version="1", config={}, inputs={}, files={}, path=folder)


# --- baseline: a naive filter chain -------------------------------------------------------------

PUNCT = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~…“”‘’—–")
STOP = {"the", "be", "to", "of", "and", "that", "have", "with"}
POLICY = ("javascript", "terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies",
          "use cookies")
EMAIL = re.compile(r"[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w])")


CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
CJK = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]")


def naive_normalize(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = CONTROL.sub("", text)
    text = unicodedata.normalize("NFC", text)
    text = EMAIL.sub("<EMAIL>", text)
    text = IPV4.sub("<IP>", text)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n")


def words_of(text: str) -> list[str]:
    return [w for w in text.split() if any(c not in PUNCT for c in w)]


def dup_fracs(elements: list[str], text: str) -> tuple[float, float]:
    seen, dup, chars = set(), 0, 0
    for e in elements:
        if e in seen:
            dup += 1
            chars += len(e)
        else:
            seen.add(e)
    return (dup / len(elements) if elements else 0.0), chars / len(text)


def top_ngram_frac(text: str, n: int) -> float:
    w = text.split()
    grams = [" ".join(w[i:i + n]) for i in range(len(w) - n + 1)]
    if not grams:
        return 0.0
    gram, count = Counter(grams).most_common(1)[0]
    return len(gram) * count / len(text)


def dup_ngram_frac(text: str, n: int) -> float:
    w = text.split()
    seen, i, chars = set(), 0, 0
    while i < len(w) - n + 1:
        gram = "".join(w[i:i + n])
        if gram in seen:
            chars += len(gram)
            i += n
        else:
            seen.add(gram)
            i += 1
    return chars / len(text)


def lines_of(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def baseline_rules(c: CleanConfig) -> list[tuple[str, object]]:
    mean_len = lambda t: sum(map(len, words_of(t))) / max(1, len(words_of(t)))  # noqa: E731
    rules = [
        ("empty", lambda t: not t.strip()),
        ("gopher_min_words", lambda t: len(words_of(t)) < c.min_words),
        ("gopher_max_words", lambda t: len(words_of(t)) > c.max_words),
        ("gopher_mean_word_len", lambda t: not CJK.search(t) and not c.min_mean_word_len <= mean_len(t)
         <= c.max_mean_word_len),
        ("gopher_symbol_ratio", lambda t: (t.count("#") + t.count("...") + t.count("…"))
         / max(1, len(words_of(t))) > c.max_symbol_ratio),
        ("gopher_bullet_lines", lambda t: sum(l.lstrip().startswith(("•", "-")) for l in lines_of(t))
         / len(lines_of(t)) > c.max_bullet_lines_ratio),
        ("gopher_ellipsis_lines", lambda t: sum(l.endswith(("...", "…")) for l in lines_of(t))
         / len(lines_of(t)) > c.max_ellipsis_lines_ratio),
        ("gopher_alpha_words", lambda t: sum(any(ch.isalpha() for ch in w) for w in t.split())
         / len(t.split()) < c.min_alpha_words_ratio),
        ("gopher_stopwords", lambda t: len(STOP & {w.lower().strip("".join(PUNCT)) for w in t.split()})
         < c.min_stopwords),
        ("gopher_dup_lines", lambda t: dup_fracs(lines_of(t), t)[0] > c.max_dup_line_frac),
        ("gopher_dup_line_chars", lambda t: dup_fracs(lines_of(t), t)[1] > c.max_dup_line_char_frac),
        ("gopher_dup_paras", lambda t: dup_fracs(re.split(r"\n{2,}", t), t)[0] > c.max_dup_para_frac),
        ("gopher_dup_para_chars", lambda t: dup_fracs(re.split(r"\n{2,}", t), t)[1] > c.max_dup_para_char_frac),
    ]
    for n in (2, 3, 4):
        rules.append((f"gopher_top_{n}gram", lambda t, n=n: top_ngram_frac(t, n)
                      > getattr(c, f"max_top_{n}gram_char_frac")))
    for n in range(5, 11):
        rules.append((f"gopher_dup_{n}gram", lambda t, n=n: dup_ngram_frac(t, n)
                      > getattr(c, f"max_dup_{n}gram_char_frac")))
    rules += [
        ("c4_lorem_ipsum", lambda t: "lorem ipsum" in t.lower()),
        ("c4_javascript_policy", lambda t: sum(any(p in l.lower() for p in POLICY) for l in lines_of(t))
         / len(lines_of(t)) > c.max_javascript_policy_lines_ratio),
        ("c4_terminal_punct", lambda t: sum(l.endswith((".", "!", "?", '"', "'")) and not l.endswith("...")
                                            for l in lines_of(t)) / len(lines_of(t))
         < c.min_terminal_punct_lines_ratio),
        ("c4_short_lines", lambda t: sum(len(l.split()) < 3 for l in lines_of(t)) / len(lines_of(t))
         > c.max_short_lines_ratio),
    ]
    return rules


def baseline(upstream: Manifest, out: Path, cfg: CleanConfig) -> int:
    rules = baseline_rules(cfg)
    n = 0
    for i, path in enumerate(documents.doc_shards(upstream.path)):
        table = pq.read_table(path)
        texts = [naive_normalize(t) for t in table.column("text").to_pylist()]
        reasons = [next((name for name, fails in rules if fails(t)), None) for t in texts]
        table = table.set_column(1, "text", pa.array(texts, pa.string()))
        table = table.append_column("drop_reason", pa.array(reasons, pa.string()))
        (out / "docs").mkdir(parents=True, exist_ok=True)
        documents.write_table(table, out / documents.shard_name(i))
        n += table.num_rows
    return n


# --- measurement -------------------------------------------------------------------------------

def python_loop_us() -> float:
    """CPU microseconds for ``sum(range(1000))`` (best of 5): how fast this core runs plain Python,
    to compare figures across machines (the stage is Python-bound)."""
    best = float("inf")
    for _ in range(5):
        c0 = time.process_time()
        for _ in range(2000):
            sum(range(1000))
        best = min(best, (time.process_time() - c0) / 2000 * 1e6)
    return best


def timed(fn) -> tuple[float, float]:
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c0, time.perf_counter() - w0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--long", action="store_true", help="24,000 documents (baseline: 3,000), 5 rounds")
    ap.add_argument("--docs", type=int, help="number of documents (default 8,000; 24,000 with --long)")
    ap.add_argument("--rounds", type=int, help="interleaved rounds (default 3; 5 with --long)")
    args = ap.parse_args()
    n_docs = args.docs or (24000 if args.long else 8000)
    n_base = min(n_docs, 3000 if args.long else 1000)
    rounds = args.rounds or (5 if args.long else 3)
    cfg = CleanConfig()
    docs = make_docs(n_docs)
    mb = sum(len(d.encode()) for d in docs) / 1e6
    print(f"clean_speed: {len(docs):,} documents, {mb:.1f} MB, mean {mb * 1e6 / len(docs):,.0f} bytes "
          f"(baseline: the first {n_base:,}); {rounds} interleaved rounds, workers=1")
    tmp = Path(tempfile.mkdtemp(prefix="clean-bench-"))
    try:
        upstream = write_upstream(tmp / "up", docs)
        base_upstream = write_upstream(tmp / "base_up", docs[:n_base])
        ours, base = [], []
        for r in range(rounds):
            def stage() -> None:
                ctx = StageContext(name="clean", key=f"r{r}", out=tmp / f"out{r}", inputs={"docs": upstream},
                                   work=tmp / f"work{r}")
                stats = run(cfg, ctx)
                assert stats["docs_in"] == len(docs) and stats["attr_shards_reused"] == 0
            pair = [("ours", stage, ours, len(docs)),
                    ("baseline", lambda: baseline(base_upstream, tmp / f"base{r}", cfg), base, n_base)]
            for name, fn, acc, n in (pair if r % 2 == 0 else pair[::-1]):
                cpu, wall = timed(fn)
                acc.append((cpu / n, wall / n))
                print(f"  round {r + 1} {name:<8} {n:6,} docs  cpu {cpu:6.2f} s  wall {wall:6.2f} s  "
                      f"{n / cpu:8,.0f} docs/cpu-s  {n / wall:8,.0f} docs/s")
        agree = _agreement(tmp / "out0", tmp / "base0")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rate = 1 / statistics.median(c for c, _ in ours)
    base_rate = 1 / statistics.median(c for c, _ in base)
    wall_rate = 1 / statistics.median(w for _, w in ours)
    loop_us = python_loop_us()
    print(f"ours:     {rate:,.0f} docs/s per core (CPU time), {wall_rate:,.0f} docs/s wall; "
          f"this core runs sum(range(1000)) in {loop_us:.1f} us; load average {os.getloadavg()[0]:.1f}")
    print(f"baseline: {base_rate:,.0f} docs/s per core; speedup {rate / base_rate:.1f}x; "
          f"same drop decision on {agree:.1%} of the baseline's documents")
    print(json.dumps({"bench": "clean_speed", "docs_per_s_per_core": round(rate, 1),
                      "baseline_docs_per_s_per_core": round(base_rate, 1), "target": TARGET,
                      "met": rate >= TARGET, "wall_docs_per_s": round(wall_rate, 1),
                      "speedup": round(rate / base_rate, 2), "docs": len(docs), "mean_doc_bytes": round(mb * 1e6 / len(docs)),
                      "rounds": rounds, "keep_decision_agreement": round(agree, 4),
                      "python_loop_us": round(loop_us, 2), "load_average": round(os.getloadavg()[0], 2),
                      "compiled_kernels": attributes.kernels_built()}))


def _agreement(ours: Path, base: Path) -> float:
    """Share of the baseline's documents on which both keep or both drop."""
    a = [r is None for p in documents.doc_shards(ours) for r in pq.read_table(p, columns=["drop_reason"])
         .column(0).to_pylist()]
    b = [r is None for p in documents.doc_shards(base) for r in pq.read_table(p, columns=["drop_reason"])
         .column(0).to_pylist()]
    return sum(x == y for x, y in zip(a, b)) / len(b)


if __name__ == "__main__":
    main()
