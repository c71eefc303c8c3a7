"""Per-shard work run in worker processes, and the Arrow/Parquet files it reads and writes.

Workers return bytes (a finished file, or arrays); the parent writes them with ``ctx.write_shard`` in shard
order, so atomicity, resumption and the failure hook stay in one process and the output does not depend on
the number of workers.
"""
from __future__ import annotations

import multiprocessing
import unicodedata
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from pipeline import documents
from pipeline.dedup.config import DedupConfig
from pipeline.dedup.lsh import band_hashes
from pipeline.dedup.minhash import permutations, signatures
from pipeline.dedup.shingles import ShingleSpec, Shingles, shingle_hashes
from pipeline.dedup.verify import unique_sets

SIGNATURES_DIR = "signatures"
ADDED = ("cluster_id", "cluster_size", "drop_reason")
REASONS = np.array([None, "exact_duplicate", "near_duplicate"], dtype=object)  # drop codes 0, 1, 2
_BATCH_DOCS = 32  # documents per numpy batch: big enough to amortise calls, small enough to stay in cache

T = TypeVar("T")
R = TypeVar("R")


def signature_name(index: int) -> str:
    return f"{SIGNATURES_DIR}/part-{index:05d}.arrow"


def spec_of(cfg: DedupConfig) -> ShingleSpec:
    return ShingleSpec(cfg.word_ngram, cfg.char_ngram, cfg.unspaced_share)


def read_kept(path: Path, columns: list[str] | None = None) -> pa.Table:
    """One upstream shard's kept rows (``drop_reason`` null), as ``documents.iter_tables`` reads them."""
    names = pq.read_schema(path).names
    want = list(columns) if columns is not None else names
    extra = ["drop_reason"] if "drop_reason" in names and "drop_reason" not in want else []
    table = pq.read_table(path, columns=want + extra)
    if "drop_reason" in names:
        table = table.filter(table.column("drop_reason").is_null())
    return table.drop_columns(extra)


class ShardPool:
    """Ordered map over shard tasks: in this process for one worker, else a process pool.

    At most two tasks per worker are in flight, so finished results (whole shard files) never pile up in
    the parent. The pool lives for the whole stage: workers start once and keep their caches.
    """

    def __init__(self, workers: int):
        self.workers, self.pool = workers, None
        if workers > 1:
            # forkserver, not fork: the caller may be a Prefect worker thread, and forking a threaded process
            # can deadlock on locks held by other threads. Preloading this module and datasketch (which
            # imports scipy: seconds) in the server makes every worker start with them already imported.
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload([__name__, "datasketch"])
            self.pool = ProcessPoolExecutor(workers, mp_context=context)

    def map(self, fn: Callable[[T], R], tasks: Sequence[T]) -> Iterator[R]:
        if self.pool is None:
            yield from map(fn, tasks)
            return
        queue = iter(tasks)
        pending = deque(self.pool.submit(fn, t) for t in islice(queue, 2 * self.workers))
        while pending:
            result = pending.popleft().result()
            for t in islice(queue, 1):
                pending.append(self.pool.submit(fn, t))
            yield result

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "ShardPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def exact_digests(texts: Iterable[str]) -> np.ndarray:
    """xxh3-128 of each text after NFC and ASCII-whitespace normalization (runs → one space, ends trimmed)."""
    out = bytearray()
    for t in texts:
        if not t.isascii():
            t = unicodedata.normalize("NFC", t)
        out += xxhash.xxh3_128_digest(b" ".join(t.encode().split()))
    return np.frombuffer(bytes(out), dtype=np.uint64).reshape(-1, 2)


def shingles_in_batches(texts: Sequence[str], spec: ShingleSpec) -> Iterator[Shingles]:
    for lo in range(0, len(texts), _BATCH_DOCS):
        yield shingle_hashes(texts[lo:lo + _BATCH_DOCS], spec)


def _fixed_list(values: np.ndarray, width: int) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), width)


def _ipc_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


@dataclass(frozen=True)
class SignatureTask:
    path: str
    cfg: DedupConfig
    bands: int
    rows: int


def signature_shard(task: SignatureTask) -> bytes:
    """An Arrow IPC file: per kept document its exact digest, shingle count, shingling mode, MinHash
    signature (uint32 × num_perm) and LSH band keys (uint64 × bands)."""
    cfg = task.cfg
    texts = read_kept(Path(task.path), ["text"]).column("text").to_pylist()
    perms = permutations(cfg.num_perm, cfg.seed, cfg.scheme)
    sigs, counts, flags = [np.zeros((0, cfg.num_perm), np.uint32)], [np.zeros(0, np.int64)], [np.zeros(0, bool)]
    for sh in shingles_in_batches(texts, spec_of(cfg)):
        sigs.append(signatures(sh.hashes, sh.offsets, perms, cfg.scheme))
        counts.append(sh.counts())
        flags.append(sh.unspaced)
    sig = np.concatenate(sigs)
    table = pa.table({
        "exact_hash": _fixed_list(exact_digests(texts).reshape(-1, 2), 2),
        "shingles": pa.array(np.concatenate(counts).astype(np.int32)),
        "unspaced": pa.array(np.concatenate(flags)),
        "signature": _fixed_list(sig, cfg.num_perm),
        "bands": _fixed_list(band_hashes(sig, task.bands, task.rows), task.bands),
    })
    return _ipc_bytes(table)


def read_signature_columns(path: Path, columns: list[str]) -> dict[str, np.ndarray]:
    """Columns of a signature file as numpy arrays (fixed-size lists become 2-D)."""
    with pa.memory_map(str(path)) as source:
        table = pa.ipc.open_file(source).read_all().select(columns)
    out = {}
    for name in columns:
        col = table.column(name).combine_chunks()
        if pa.types.is_fixed_size_list(col.type):
            out[name] = col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), col.type.list_size)
        else:
            out[name] = col.to_numpy(zero_copy_only=False)
    return out


@dataclass(frozen=True)
class SetsTask:
    path: str
    rows: np.ndarray  # positions among the shard's kept rows
    spec: ShingleSpec


def shingle_sets(task: SetsTask) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique shingle hashes of the given rows: (values, sizes)."""
    texts = read_kept(Path(task.path), ["text"]).column("text").take(pa.array(task.rows)).to_pylist()
    values, sizes = [np.zeros(0, np.uint32)], [np.zeros(0, np.int64)]
    for sh in shingles_in_batches(texts, task.spec):
        v, offs = unique_sets(sh.hashes, sh.offsets)
        values.append(v)
        sizes.append(np.diff(offs))
    return np.concatenate(values), np.concatenate(sizes)


@dataclass(frozen=True)
class OutputTask:
    path: str
    cluster_id: np.ndarray
    cluster_size: np.ndarray
    reason: np.ndarray  # drop codes, see REASONS


def output_table(table: pa.Table, cluster_id: np.ndarray, cluster_size: np.ndarray,
                 reason: np.ndarray) -> pa.Table:
    table = table.drop_columns([c for c in ADDED if c in table.column_names])
    reasons = pa.array(REASONS[reason], type=pa.string(), mask=reason == 0)
    return (table.append_column("cluster_id", pa.array(cluster_id.astype(np.int64)))
            .append_column("cluster_size", pa.array(cluster_size.astype(np.int32)))
            .append_column("drop_reason", reasons))


def output_shard(task: OutputTask) -> bytes:
    """The upstream shard's kept rows with cluster_id, cluster_size and drop_reason, as Parquet bytes."""
    table = output_table(read_kept(Path(task.path)), task.cluster_id, task.cluster_size, task.reason)
    sink = pa.BufferOutputStream()
    documents.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def empty_output() -> bytes:
    """A well-formed output shard without rows (for an input without shards)."""
    table = output_table(documents.SCHEMA.empty_table(), np.zeros(0), np.zeros(0), np.zeros(0, np.int8))
    sink = pa.BufferOutputStream()
    documents.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def read_rows(path: Path, rows: np.ndarray, columns: list[str]) -> dict[str, list[Any]]:
    table = read_kept(path, columns).take(pa.array(rows))
    return {c: table.column(c).to_pylist() for c in columns}
