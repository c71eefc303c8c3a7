"""The clean stage: every input document out again, normalized, with attributes and a drop reason.

Per input shard (one output shard each, resumable): read the kept documents, take their normalized
text and attributes from the attribute cache (computing them on a miss), apply the rules and write
``docs/part-NNNNN.parquet`` = the input columns (``text`` normalized) + ``pii_*`` + attribute columns +
``drop_reason`` (null when kept). Shards run in a process pool when ``ctx.workers > 1``; results are
taken in shard order and the figures are computed from the output files, so the output and the stats
do not depend on the number of workers or on where a killed run stopped.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.clean import attributes, cache, reports
from pipeline.clean.config import CleanConfig
from pipeline.clean.rules import RULE_NAMES, RULES, apply
from pipeline.documents import shard_name, write_table
from pipeline.stage import StageContext

_RULE_COLUMNS = sorted({r.column for r in RULES} | {"n_words"})
_NAMES = np.array(RULE_NAMES + (None,), dtype=object)  # index -1 (kept) -> None


@dataclass(frozen=True)
class ShardJob:
    index: int
    source: Path  # the input shard
    cached: Path  # its attribute-cache shard
    tmp: Path  # where the worker writes the output shard before the stage adopts it
    cfg: CleanConfig


def run(cfg: CleanConfig, ctx: StageContext) -> dict:
    upstream = ctx.input("docs")
    assert upstream.path is not None, "the docs manifest is not bound to a folder"
    jobs = []
    for i, (src, cached) in enumerate(cache.shard_files(ctx.work, upstream, cfg.normalize_options()).items()):
        rel = shard_name(i)
        if not ctx.shard_done(rel):
            tmp = (ctx.out / rel).with_name(f".{Path(rel).name}.tmp-w{os.getpid()}")
            jobs.append(ShardJob(i, src, cached, tmp, cfg))
    computed = 0
    progress = ctx.progress(total=len(jobs), unit="shards")
    for job, (was_computed, kept, n) in zip(jobs, _map(process_shard, jobs, ctx.workers)):
        ctx.write_shard(shard_name(job.index), lambda tmp, job=job: os.replace(job.tmp, tmp))
        computed += was_computed
        ctx.tracker.log_metrics({"shard_docs": n, "shard_kept_frac": kept / n if n else 0.0}, step=job.index)
        progress.update(1)
    progress.close()
    stats = reports.write_all(cfg, ctx)
    stats["attr_shards_computed"] = computed
    stats["attr_shards_reused"] = len(jobs) - computed
    stats["compiled_kernels"] = attributes.kernels_built()  # False: the slower pure-Python attributes
    return stats


def _map(fn, jobs: list[ShardJob], workers: int):
    """``map`` in job order, in a process pool when ``workers > 1``; pending jobs are cancelled on error."""
    if workers <= 1 or len(jobs) <= 1:
        yield from map(fn, jobs)
        return
    # forkserver: forking a process that runs Prefect's threads could copy a held lock.
    mp = multiprocessing.get_context("forkserver")
    mp.set_forkserver_preload(["pipeline.clean.stage"])
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=mp) as pool:
        futures = [pool.submit(fn, job) for job in jobs]
        try:
            for f in futures:
                yield f.result()
        finally:
            for f in futures:
                f.cancel()


def process_shard(job: ShardJob) -> tuple[bool, int, int]:
    """Clean one shard into ``job.tmp``; return (attributes computed, docs kept, docs)."""
    table = _read_kept(job.source)
    attrs, computed = cache.load_or_compute(job.cached, table.column("text").to_pylist(),
                                            job.cfg.normalize_options())
    reason_idx = _first_failed(attrs, table.column("source").to_pylist(), job.cfg)
    drop_reason = pa.array(_NAMES[reason_idx].tolist(), type=pa.string())
    out = table.drop_columns([c for c in table.column_names if c in attrs.column_names and c != "text"])
    out = out.set_column(out.column_names.index("text"), "text", attrs.column("text"))
    for name in attrs.column_names[1:]:
        out = out.append_column(name, attrs.column(name))
    out = out.append_column("drop_reason", drop_reason)
    job.tmp.parent.mkdir(parents=True, exist_ok=True)
    write_table(out, job.tmp)
    return computed, int((reason_idx < 0).sum()), out.num_rows


def drop_reasons(texts: list[str], sources: list[str], cfg: CleanConfig) -> list[str | None]:
    """Why each text would be dropped (None: kept), without a stage context: for tests and notebooks."""
    attrs = cache.compute_table(texts, cfg.normalize_options())
    return _NAMES[_first_failed(attrs, sources, cfg)].tolist()


def _first_failed(attrs: pa.Table, sources: list[str], cfg: CleanConfig) -> np.ndarray:
    columns = {name: attrs.column(name).to_numpy(zero_copy_only=False) for name in _RULE_COLUMNS}
    return apply(columns, np.asarray(sources, dtype=object),
                 np.asarray(attrs.column("script").to_pylist(), dtype=object), cfg)


def _read_kept(path: Path) -> pa.Table:
    """One upstream shard without the rows that stage dropped (and without its drop_reason)."""
    table = pq.read_table(path)
    if "drop_reason" in table.column_names:
        table = table.filter(table.column("drop_reason").is_null()).drop_columns(["drop_reason"])
    return table
