"""Dedup stage: exact duplicates by hash, then near-duplicates by MinHash LSH with verified Jaccard.

1. Signatures (per shard, in worker processes, resumable): for each kept upstream document an xxh3-128
   digest of its normalized text, its shingle hashes (word 5-grams, or character 5-grams for CJK-like
   text), a datasketch-compatible MinHash signature and its LSH band keys → ``signatures/part-*.arrow``.
2. Global, in the parent on arrays: exact-duplicate groups; candidate pairs from equal band keys among the
   first document of each exact group; the true Jaccard of every candidate on shingle-hash sets (shingles
   recomputed in workers for the candidates only); connected components of exact links and verified pairs.
3. Output (per shard, resumable): the upstream shard's kept rows plus ``cluster_id`` (stream position of
   the cluster's kept document), ``cluster_size`` and ``drop_reason`` (null, ``exact_duplicate`` or
   ``near_duplicate``) → ``docs/part-*.parquet``, one per upstream shard.
Keep rule: in every exact group and every cluster, the first document in stream order (upstream shards in
name order, rows in order) is kept.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import documents
from pipeline.dedup import report
from pipeline.dedup.clusters import components, exact_representatives
from pipeline.dedup.config import DedupConfig
from pipeline.dedup.lsh import candidate_pairs, optimal_params, s_curve
from pipeline.dedup.shards import (REASONS, OutputTask, SetsTask, ShardPool, SignatureTask, empty_output,
                                   output_shard, read_rows, read_signature_columns, shingle_sets, signature_name,
                                   signature_shard, spec_of)
from pipeline.dedup.shingles import shingle_hashes
from pipeline.dedup.verify import jaccard, unique_sets
from pipeline.stage import StageContext

from pipeline.dedup import VERSION  # noqa: E402  (one definition, in the package)
__all__ = ["VERSION", "DedupConfig", "run", "lsh_params"]


def lsh_params(cfg: DedupConfig) -> tuple[int, int]:
    if cfg.bands is not None:
        return cfg.bands, cfg.rows
    return optimal_params(cfg.threshold, cfg.num_perm, cfg.fn_weight)


@dataclass
class Index:
    """The signature files' columns for all documents, in stream order."""
    digests: np.ndarray   # n × 2 uint64
    shingles: np.ndarray  # n int32
    unspaced: np.ndarray  # n bool
    bands: np.ndarray     # n × b uint64
    starts: np.ndarray    # stream position of each shard's first document (len = shards + 1)

    def locate(self, positions: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Group sorted stream positions by shard: [(shard, rows within the shard)]."""
        shard = np.searchsorted(self.starts, positions, side="right") - 1
        return [(int(s), positions[shard == s] - self.starts[s]) for s in np.unique(shard)]


@dataclass
class Decision:
    """What the global step decided, per document in stream order, and the pairs it looked at."""
    labels: np.ndarray  # cluster id = stream position of the cluster's kept (first) document
    sizes: np.ndarray   # size of the document's cluster
    reason: np.ndarray  # drop code: 0 kept, 1 exact duplicate, 2 near duplicate (shards.REASONS)
    pairs: np.ndarray   # LSH candidate pairs (k × 2 stream positions)
    sims: np.ndarray    # their true Jaccard (ones when verification is off)
    near: np.ndarray    # the pairs accepted as near-duplicates


def _signature_pass(cfg: DedupConfig, ctx: StageContext, pool: ShardPool, inputs: list[Path], bands: int,
                    rows: int) -> None:
    todo = [i for i in range(len(inputs)) if not ctx.shard_done(signature_name(i))]
    tasks = [SignatureTask(str(inputs[i]), cfg, bands, rows) for i in todo]
    progress = ctx.progress(total=len(todo), unit="shards", label=f"{ctx.name} signatures")
    for step, (i, data) in enumerate(zip(todo, pool.map(signature_shard, tasks))):
        ctx.write_shard(signature_name(i), lambda tmp: tmp.write_bytes(data))
        ctx.tracker.log_metrics({"signature_shards_done": step + 1}, step=step)
        progress.update(1)
    progress.close()


def _load_index(out: Path, n_shards: int, bands: int) -> Index:
    cols = ["exact_hash", "shingles", "unspaced", "bands"]
    parts = [read_signature_columns(out / signature_name(i), cols) for i in range(n_shards)]
    sizes = np.array([len(p["shingles"]) for p in parts], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    def cat(name: str, empty: np.ndarray) -> np.ndarray:
        return np.concatenate([empty] + [p[name] for p in parts])
    return Index(digests=cat("exact_hash", np.zeros((0, 2), np.uint64)),
                 shingles=cat("shingles", np.zeros(0, np.int32)),
                 unspaced=cat("unspaced", np.zeros(0, bool)),
                 bands=cat("bands", np.zeros((0, bands), np.uint64)), starts=starts)


def _true_jaccard(cfg: DedupConfig, ctx: StageContext, pool: ShardPool, inputs: list[Path], index: Index,
                  pairs: np.ndarray) -> np.ndarray:
    """Jaccard of each pair (stream positions) on shingle-hash sets recomputed for the docs involved."""
    docs = np.unique(pairs)
    tasks = [SetsTask(str(inputs[s]), rows, spec_of(cfg)) for s, rows in index.locate(docs)]
    progress = ctx.progress(total=len(tasks), unit="shards", label=f"{ctx.name} verify {len(pairs):,} pairs")
    found = []
    for got in pool.map(shingle_sets, tasks):
        found.append(got)
        progress.update(1)
    progress.close()
    values, sizes = zip(*found) if found else ((), ())
    offsets = np.concatenate([[0], np.cumsum(np.concatenate([np.zeros(0, np.int64), *sizes]))]).astype(np.int64)
    table = np.concatenate([np.zeros(0, np.uint32), *values])
    return jaccard(table, offsets, np.searchsorted(docs, pairs))


def _output_pass(ctx: StageContext, pool: ShardPool, inputs: list[Path], index: Index, d: Decision) -> None:
    todo = documents.pending_shards(ctx, len(inputs), empty_output)
    tasks = []
    for i in todo:
        lo, hi = index.starts[i], index.starts[i + 1]
        tasks.append(OutputTask(str(inputs[i]), d.labels[lo:hi], d.sizes[lo:hi], d.reason[lo:hi]))
    progress = ctx.progress(total=len(todo), unit="shards", label=f"{ctx.name} write")
    for i, data in zip(todo, pool.map(output_shard, tasks)):
        ctx.write_shard(documents.shard_name(i), lambda tmp: tmp.write_bytes(data))
        progress.update(1)
    progress.close()


def _decide(cfg: DedupConfig, ctx: StageContext, pool: ShardPool, inputs: list[Path], index: Index) -> Decision:
    n = len(index.shingles)
    pos = np.arange(n, dtype=np.int64)
    rep = exact_representatives(index.digests) if cfg.exact else pos
    # Only the first document of each exact group enters LSH; documents without shingles cannot match.
    members = np.flatnonzero((rep == pos) & (index.shingles > 0))
    ctx.note(f"candidate pairs: the LSH buckets of {len(members):,} documents")
    pairs = candidate_pairs(index.bands[members], members, cfg.bucket_window)
    sims = _true_jaccard(cfg, ctx, pool, inputs, index, pairs) if cfg.verify else np.ones(len(pairs))
    near = pairs[sims >= cfg.threshold]
    exact_dups = np.flatnonzero(rep != pos)
    labels = components(n, np.concatenate([np.column_stack([exact_dups, rep[exact_dups]]), near]))
    reason = np.where(rep != pos, 1, np.where(labels != pos, 2, 0)).astype(np.int8)
    return Decision(labels, np.bincount(labels, minlength=n)[labels], reason, pairs, sims, near)


def _stats(cfg: DedupConfig, index: Index, d: Decision, bands: int, rows: int) -> dict[str, Any]:
    n = len(d.labels)
    cluster_sizes = d.sizes[d.labels == np.arange(n)]  # one entry per cluster, at its kept document
    dropped = {str(REASONS[code]): int(np.count_nonzero(d.reason == code)) for code in (1, 2)}
    return {
        "docs": n, "kept": int(np.count_nonzero(d.reason == 0)),
        "exact_duplicates": dropped["exact_duplicate"], "near_duplicates": dropped["near_duplicate"],
        "candidate_pairs": len(d.pairs), "verified_pairs": len(d.near),
        "rejected_pairs": len(d.pairs) - len(d.near),
        "clusters": int(np.count_nonzero(cluster_sizes > 1)),
        "largest_cluster": int(cluster_sizes.max()) if n else 0,
        "docs_without_shingles": int(np.count_nonzero(index.shingles == 0)),
        "unspaced_docs": int(np.count_nonzero(index.unspaced)),
        "num_perm": cfg.num_perm, "bands": bands, "rows": rows,
        "lsh_threshold": round((1.0 / bands) ** (1.0 / rows), 4),  # where the S-curve is steepest
        "p_candidate_at_threshold": round(float(s_curve(cfg.threshold, bands, rows)), 4),
        "dropped": dropped,
        "cluster_size_histogram": report.size_histogram(cluster_sizes),
    }


def _sample(cfg: DedupConfig, inputs: list[Path], index: Index, d: Decision) -> list[dict[str, Any]]:
    """Sampled clusters with texts side by side and each member's true Jaccard to the kept document."""
    clusters = report.pick_clusters(d.labels, d.sizes, cfg.sample_clusters)
    shown = np.unique(np.concatenate([c[:report.MAX_MEMBERS] for c in clusters])) if clusters else np.zeros(0, int)
    rows: dict[int, dict[str, Any]] = {}
    for s, local in index.locate(shown):
        got = read_rows(inputs[s], local, ["doc_id", "text"])
        for k, p in enumerate(local + index.starts[s]):
            rows[int(p)] = {"doc_id": got["doc_id"][k], "text": got["text"][k], "drop_reason": REASONS[d.reason[p]]}
    pairs = np.array([(c[0], p) for c in clusters for p in c[:report.MAX_MEMBERS]], dtype=np.int64).reshape(-1, 2)
    sims = {}
    if len(pairs):
        sh = shingle_hashes([rows[int(p)]["text"] for p in shown], spec_of(cfg))
        values, offsets = unique_sets(sh.hashes, sh.offsets)
        sims = dict(zip(pairs[:, 1].tolist(), jaccard(values, offsets, np.searchsorted(shown, pairs)).tolist()))
    return [report.cluster_entry(c, rows, sims, cfg.sample_chars) for c in clusters]


def run(cfg: DedupConfig, ctx: StageContext) -> dict[str, Any]:
    inputs = documents.doc_shards(ctx.input("docs").path)
    bands, rows = lsh_params(cfg)
    with ShardPool(ctx.workers) as pool:
        _signature_pass(cfg, ctx, pool, inputs, bands, rows)
        index = _load_index(ctx.out, len(inputs), bands)
        decision = _decide(cfg, ctx, pool, inputs, index)
        _output_pass(ctx, pool, inputs, index, decision)
    stats = _stats(cfg, index, decision, bands, rows)
    ctx.write_report("dedup_report.json", {
        **stats, "threshold": cfg.threshold, "scheme": cfg.scheme, "verify": cfg.verify,
        "candidate_jaccard_histogram": report.jaccard_histogram(decision.sims) if cfg.verify else None,
    })
    ctx.write_report("clusters_sample.json", _sample(cfg, inputs, index, decision))
    report.plot_s_curve(ctx.reports / "lsh_s_curve.png", bands, rows, cfg.threshold)
    return stats
