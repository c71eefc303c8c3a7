"""The train/validation split: whole near-duplicate clusters (else documents), from a keyed hash.

A document's split key is its ``cluster_id`` when the upstream stage has one (dedup keeps one document
per cluster, but a kept document's cluster may still hold other kept ones, e.g. at a loose threshold), else
its ``doc_id``. ``blake2b(key, key=seed) / 2**64 < val_fraction`` puts the key in validation, so every
document of a cluster lands on the same side, whatever the order or sharding of the input.

Guarantees (applied to whole keys, so they never split a cluster): with ``val_fraction > 0`` and at
least two keys, validation and training each get at least one key; with a single key everything is
training and validation is empty.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from pipeline import documents
from pipeline.tokenize.read import iter_kept

SPLITS = ("train", "val")


@dataclass
class SplitPlan:
    is_val: np.ndarray  # bool per kept document, in input order
    key: str  # "cluster_id" or "doc_id"
    note: str  # how a guarantee changed the hash split ("" when it did not)

    @property
    def n_docs(self) -> int:
        return len(self.is_val)

    def docs(self, split: str) -> int:
        return int(self.is_val.sum()) if split == "val" else int((~self.is_val).sum())


def key_hash(seed: int, key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8,
                                          key=seed.to_bytes(8, "little")).digest(), "little")


def assign(hashes: np.ndarray, val_fraction: float) -> tuple[np.ndarray, str]:
    """Validation mask from per-document key hashes (uint64), with the guarantees applied."""
    if len(hashes) < 2 or val_fraction <= 0:
        note = "a single document: it is train, val is empty" if len(hashes) == 1 and val_fraction > 0 else ""
        return np.zeros(len(hashes), dtype=bool), note
    if hashes.min() == hashes.max():
        return np.zeros(len(hashes), dtype=bool), "a single split key: everything is train, val is empty"
    is_val = hashes / 2.0**64 < val_fraction
    if not is_val.any():
        return hashes == hashes.min(), "no key hashed below val_fraction: the lowest-hash key went to val"
    if is_val.all():
        return hashes != hashes.max(), "every key hashed below val_fraction: the highest-hash key went to train"
    return is_val, ""


def plan_split(folder: Path, seed: int, val_fraction: float) -> SplitPlan:
    """Read the kept documents' keys (not their text) and split them."""
    shards = documents.doc_shards(folder)
    has_cluster = bool(shards) and "cluster_id" in pq.read_schema(shards[0]).names
    columns = ["doc_id"] + (["cluster_id"] if has_cluster else [])
    hashes = []
    for table in iter_kept(folder, columns):
        doc_ids = table.column("doc_id").to_pylist()
        clusters = table.column("cluster_id").to_pylist() if has_cluster else [None] * len(doc_ids)
        keys = (f"c:{c}" if c is not None else f"d:{d}" for c, d in zip(clusters, doc_ids))
        hashes.append(np.fromiter((key_hash(seed, k) for k in keys), dtype=np.uint64, count=len(doc_ids)))
    is_val, note = assign(np.concatenate(hashes) if hashes else np.zeros(0, np.uint64), val_fraction)
    return SplitPlan(is_val, "cluster_id" if has_cluster else "doc_id", note)
