"""Per-shard work (run in worker processes): the upstream shard's kept rows, marked where contaminated.

A worker returns the finished Parquet file as bytes; the parent writes it with ``ctx.write_shard`` in shard
order, so atomicity, resumption and the output's independence of the number of workers stay in one place.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline import documents
from pipeline.decontaminate.index import EvalIndex
from pipeline.decontaminate.match import scan
from pipeline.decontaminate.ngrams import UNITS, window_text
from pipeline.dedup.shards import read_kept
from pipeline.tasks.heldout import doc_unit

REASON = "contaminated"
ADDED = ("drop_reason", "contamination")
# Documents hashed together: amortises numpy calls; bounded by characters too, as the arrays take ~70 bytes a
# character (128 documents of 200k characters held 2.3 GB; a batch of 1M characters takes ~70 MB).
_BATCH_DOCS, _BATCH_CHARS = 128, 1_000_000


@dataclass(frozen=True)
class ShardTask:
    path: str
    index: EvalIndex


def mark(texts: list[str], index: EvalIndex, metas: list[str | None] | None = None) -> list[str | None]:
    """The ``contamination`` value of each document: JSON naming what matched (the ``task:split`` sets, the
    first shared n-gram and the number of shared windows, or the held-out unit), None when clean."""
    found: dict[int, dict[str, Any]] = {}
    for lo, hi in batches([len(t) for t in texts], _BATCH_DOCS, _BATCH_CHARS):
        batch = texts[lo:hi]
        m = scan(batch, index)
        for i, d in enumerate(m.doc.tolist()):
            unit, start, n = UNITS[int(m.unit[i])], int(m.start[i]), int(m.length[i])
            found[lo + d] = {"mask": int(m.mask[i]), "unit": unit, "n": n, "windows": int(m.hits[i]),
                             "ngram": window_text(batch[d], unit, start, n), "held_out_unit": None}
    if index.heldout and metas is not None:
        for i, meta in enumerate(metas):
            if (u := doc_unit(meta)) in index.heldout:
                entry = found.setdefault(i, {"mask": 0, "unit": None, "n": 0, "windows": 0, "ngram": None})
                entry["mask"] |= index.heldout[u]
                entry["held_out_unit"] = u
    out: list[str | None] = [None] * len(texts)
    for i, e in found.items():
        out[i] = json.dumps({"matched": index.sources_of(e.pop("mask")), **e}, ensure_ascii=False)
    return out


def batches(sizes: list[int], max_items: int, max_total: int) -> list[tuple[int, int]]:
    """Consecutive (start, end) ranges of at most ``max_items`` items whose sizes sum to at most ``max_total``
    (an item larger than that is a range of its own)."""
    out, lo, total = [], 0, 0
    for i, size in enumerate(sizes):
        if i > lo and (i - lo == max_items or total + size > max_total):
            out.append((lo, i))
            lo, total = i, 0
        total += size
    if lo < len(sizes):
        out.append((lo, len(sizes)))
    return out


def output_table(table: pa.Table, marks: list[str | None]) -> pa.Table:
    table = table.drop_columns([c for c in ADDED if c in table.column_names])
    found = pa.array(marks, type=pa.string())
    clean = found.is_null().to_numpy(zero_copy_only=False)
    reasons = pa.array(np.where(clean, None, REASON).tolist(), type=pa.string())
    return table.append_column("drop_reason", reasons).append_column("contamination", found)


def table_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    documents.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def decontaminate_shard(task: ShardTask) -> bytes:
    table = read_kept(Path(task.path))
    metas = table.column("meta").to_pylist() if "meta" in table.column_names else None
    return table_bytes(output_table(table, mark(table.column("text").to_pylist(), task.index, metas)))


def empty_shard() -> bytes:
    """A well-formed output shard without rows (for an input without shards)."""
    return table_bytes(output_table(documents.SCHEMA.empty_table(), []))
