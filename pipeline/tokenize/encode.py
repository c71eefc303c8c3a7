"""Encoding the documents into token shards, split by split, resumable per shard.

Encoding runs in batches through sentencepiece's own C++ thread pool (``ctx.workers`` threads; it
releases the GIL and hands back int32 buffers), not a process pool: the ids would otherwise cross process
boundaries as pickles. Encoding is deterministic per document, and shard boundaries depend only on
token counts, so the files do not depend on the number of workers.

Resuming: a split's finished shards are on disk (each written atomically); they hold its first N
documents in input order, so those are skipped without being encoded and packing restarts at a shard
boundary, exactly where the uninterrupted run started the next shard.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.stage import StageContext
from pipeline.tokenize.read import iter_kept
from pipeline.tokenize.scripts import dominant_scripts
from pipeline.tokenize.shards import (DocBatch, ShardPacker, count_docs, list_shards, shard_name, shard_schema,
                                      token_dtype, write_shard_file)
from pipeline.tokenize.split import SPLITS, SplitPlan
from pipeline.tokenize.tokenizer import Tokenizer

BATCH_DOCS = 512  # documents per sentencepiece call: amortises the call, keeps memory small


def encode_docs(tok: Tokenizer, doc_ids: pa.Array, texts: pa.Array, dtype: np.dtype, threads: int) -> DocBatch:
    texts = pc.fill_null(texts, "")
    flat, lengths = tok.encode_flat(texts.to_pylist(), eos=True, num_threads=threads)
    n_bytes = pc.binary_length(texts).to_numpy(zero_copy_only=False).astype(np.int64)
    return DocBatch(flat.astype(dtype), lengths, doc_ids.cast(pa.string()), n_bytes, dominant_scripts(texts))


class SplitWriter:
    """One split's shard sequence: skips documents already in shards, packs and writes the rest."""

    def __init__(self, ctx: StageContext, split: str, tok: Tokenizer, shard_tokens: int):
        self.ctx, self.split = ctx, split
        self.dtype = token_dtype(tok.vocab_size)
        self.schema = shard_schema(self.dtype, split, tok.digest)
        existing = list_shards(ctx.out, split) if (ctx.out / split).exists() else []
        self.index = len(existing)
        self.skip = sum(count_docs(p) for p in existing)  # documents already written
        self.seen = 0
        self.packer = ShardPacker(shard_tokens)
        self.new_tokens = 0

    def new_rows(self, rows: np.ndarray) -> np.ndarray:
        """The rows (of this split, in order) that are not in a finished shard yet."""
        first = max(0, self.skip - self.seen)
        self.seen += len(rows)
        return rows[first:]

    def add(self, batch: DocBatch) -> None:
        for shard in self.packer.add(batch):
            self._write(shard)

    def finish(self) -> None:
        if (shard := self.packer.finish()) is not None:
            self._write(shard)

    def _write(self, shard: DocBatch) -> None:
        rel = shard_name(self.split, self.index)
        self.ctx.write_shard(rel, lambda tmp: write_shard_file(tmp, shard, self.schema))
        self.new_tokens += len(shard.tokens)
        self.ctx.tracker.log_metrics({f"shard_tokens.{self.split}": float(len(shard.tokens))}, step=self.index)
        self.index += 1


def write_splits(ctx: StageContext, folder: Path, plan: SplitPlan, tok: Tokenizer,
                 shard_tokens: int) -> dict[str, float]:
    """Encode every kept document into its split's shards; returns what this call encoded and how fast."""
    writers = {s: SplitWriter(ctx, s, tok, shard_tokens) for s in SPLITS}
    progress = ctx.progress(total=plan.n_docs, unit="docs", label=f"{ctx.name} encode",
                            start=sum(w.skip for w in writers.values()))  # a resumed run's kept shards
    t0, pos = time.perf_counter(), 0
    threads = max(1, ctx.workers)
    for table in iter_kept(folder, ["doc_id", "text"]):
        is_val = plan.is_val[pos:pos + table.num_rows]
        pos += table.num_rows
        for split, mask in (("train", ~is_val), ("val", is_val)):
            rows = writers[split].new_rows(np.flatnonzero(mask))
            for a in range(0, len(rows), BATCH_DOCS):
                part = table.take(rows[a:a + BATCH_DOCS])
                writers[split].add(encode_docs(tok, part.column("doc_id").combine_chunks(),
                                               part.column("text").combine_chunks(), writers[split].dtype,
                                               threads))
                progress.update(part.num_rows)  # by batch: a large shard is not one silent step
    for w in writers.values():
        w.finish()
    progress.close()
    assert pos == plan.n_docs, f"documents changed since the split was planned: {pos=} {plan.n_docs=}"
    seconds = time.perf_counter() - t0
    tokens = sum(w.new_tokens for w in writers.values())
    return {"encoded_tokens": tokens, "tokens_per_s": tokens / seconds if seconds > 0 else 0.0}
