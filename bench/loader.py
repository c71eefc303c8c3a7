"""Loader throughput: int64 (B, T) torch batches from memory-mapped token shards, one core.

Ours: ``CausalBatches(TokenShards(folder, "train"), T, B, seed).get(step)`` (counter-based sampling,
one fancy-index gather per shard into a fresh int64 buffer, contiguous x and y). Baseline, side by side
on the same token stream written as one flat uint16 file: nanoGPT's ``get_batch`` (re-open
``np.memmap`` every batch, ``torch.randint`` starts, per-row ``torch.from_numpy(data[i:i+T]
.astype(np.int64))`` and ``torch.stack``). Rounds alternate the two (the order flips every round) so load
from other processes on this shared box hits both; figures are medians over rounds.

The stream is synthetic unless ``--folder`` points at a tokenize output: random ids in documents of
geometric length (mean 500 tokens), written with the stage's own shard writer in ``--shard-tokens``
shards, so windows cross shard boundaries as in a real run.

    .venv/bin/python bench/loader.py [--tokens N] [--rounds R] [--long] [--folder DIR]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline.loader import CausalBatches, MaskedBatches, TokenShards  # noqa: E402
from pipeline.tokenize.shards import (DocBatch, META_FILE, shard_name, shard_schema, token_dtype,  # noqa: E402
                                      write_shard_file)

TARGET_TOKENS_PER_S = 50e6


def synthetic_shards(folder: Path, n_tokens: int, shard_tokens: int, vocab: int = 8192) -> None:
    rng = np.random.default_rng(0)
    dtype = token_dtype(vocab)
    schema = shard_schema(dtype, "train", "synthetic")
    (folder / "train").mkdir(parents=True)
    for i, start in enumerate(range(0, n_tokens, shard_tokens)):
        n = min(shard_tokens, n_tokens - start)
        lengths = rng.geometric(1 / 500, size=n // 100 + 10)
        lengths = lengths[np.cumsum(lengths) <= n]
        lengths = np.append(lengths, n - lengths.sum()) if lengths.sum() < n else lengths
        tokens = rng.integers(15, vocab, size=n, dtype=np.int64).astype(dtype)
        tokens[np.cumsum(lengths) - 1] = 3  # EOS ends every document
        batch = DocBatch(tokens, lengths.astype(np.int64), pa.array([f"d{j}" for j in range(len(lengths))]),
                         lengths * 4, np.zeros(len(lengths), np.int8))
        write_shard_file(folder / shard_name("train", i), batch, schema)
    meta = {"vocab_size": vocab, "dtype": dtype.name, "all_special_ids": list(range(15)),
            "special_ids": {"pad": 0, "unk": 1, "bos": 2, "eos": 3, "mask": 4, "sep": 5, "cls": 6}}
    (folder / META_FILE).write_text(json.dumps(meta))


def nanogpt_get_batch(path: Path, block_size: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    # karpathy/nanoGPT train.py get_batch, CPU branch: memmap re-created every batch to avoid a leak.
    data = np.memmap(path, dtype=np.uint16, mode="r")
    ix = torch.randint(len(data) - block_size, (batch_size,))
    x = torch.stack([torch.from_numpy((data[i:i + block_size]).astype(np.int64)) for i in ix])
    y = torch.stack([torch.from_numpy((data[i + 1:i + 1 + block_size]).astype(np.int64)) for i in ix])
    return x, y


def rate(fn, n: int, tokens_per_call: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)
    return n * tokens_per_call / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=32 << 20, help="synthetic stream length")
    ap.add_argument("--shard-tokens", type=int, default=8 << 20)
    ap.add_argument("--block-size", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--long", action="store_true", help="256M tokens, 15 rounds")
    ap.add_argument("--folder", type=Path, help="a tokenize output to read instead of synthetic shards")
    args = ap.parse_args()
    if args.long:
        args.tokens, args.rounds = 256 << 20, 15
    torch.set_num_threads(1)
    T, B = args.block_size, args.batch_size
    with tempfile.TemporaryDirectory(prefix="lmforge-bench-loader-") as tmp:
        folder = args.folder
        if folder is None:
            folder = Path(tmp) / "tokens"
            synthetic_shards(folder, args.tokens, args.shard_tokens)
        shards = TokenShards(folder, "train")
        flat_file = Path(tmp) / "train.bin"
        with open(flat_file, "wb") as f:
            for t in shards.tokens:
                f.write(t.astype(np.uint16).tobytes())
        print(f"stream: {shards.n_tokens:,} tokens in {len(shards.shards)} shards; batches {B} x {T}, 1 thread")
        ours = CausalBatches(shards, T, B, seed=0)
        aligned = CausalBatches(shards, T, B, seed=0, doc_aligned=True)
        masked = MaskedBatches(shards, T, B, seed=0)
        step = {"ours": 0}

        def ours_fn(i: int) -> None:
            ours.get(step["ours"] + i)

        torch.manual_seed(0)
        results: dict[str, list[float]] = {"ours": [], "baseline": [], "doc_aligned": [], "masked": []}
        n_ours, n_base = 400, 40
        for r in range(args.rounds + 1):  # round 0 warms the page cache and is not recorded
            order = ["ours", "baseline"] if r % 2 == 0 else ["baseline", "ours"]
            for name in order:
                if name == "ours":
                    v = rate(ours_fn, n_ours, B * T)
                    step["ours"] += n_ours
                else:
                    v = rate(lambda i: nanogpt_get_batch(flat_file, T, B), n_base, B * T)
                if r:
                    results[name].append(v)
            if r:
                results["doc_aligned"].append(rate(lambda i: aligned.get(i + r * 100), 100, B * T))
                results["masked"].append(rate(lambda i: masked.get(i + r * 100), 100, B * T))
        med = {k: statistics.median(v) for k, v in results.items()}
        for k, v in med.items():
            print(f"{k:>12}: {v / 1e6:8.1f} M tokens/s (median of {args.rounds} rounds)")
        print(f"speed-up over nanoGPT get_batch: {med['ours'] / med['baseline']:.1f}x")
        print(json.dumps({
            "bench": "loader", "tokens_per_s": round(med["ours"]),
            "baseline": {"name": "nanoGPT get_batch (np.memmap per batch, per-row astype(int64), torch.stack)",
                         "tokens_per_s": round(med["baseline"])},
            "speedup_vs_baseline": round(med["ours"] / med["baseline"], 2),
            "doc_aligned_tokens_per_s": round(med["doc_aligned"]), "masked_tokens_per_s": round(med["masked"]),
            "config": {"block_size": T, "batch_size": B, "threads": 1, "stream_tokens": shards.n_tokens,
                       "shards": len(shards.shards), "rounds": args.rounds, "synthetic": args.folder is None},
            "targets": {"tokens_per_s": TARGET_TOKENS_PER_S},
            "met": med["ours"] >= TARGET_TOKENS_PER_S,
        }))


if __name__ == "__main__":
    main()
