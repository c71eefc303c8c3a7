"""The documents contract: Parquet (zstd) shards with doc_id, text, source, meta (JSON string).

Stages after ingest add columns (quality attributes, drop_reason, cluster ids) but keep these four.
A row whose ``drop_reason`` is not null was dropped by that stage and is kept only for inspection:
downstream stages read the kept rows (``iter_tables(kept_only=True)``).
Shards are named ``docs/part-00000.parquet`` …; readers iterate them in name order, so the order of
documents is part of the output and independent of the number of workers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA = pa.schema([
    ("doc_id", pa.string()),
    ("text", pa.string()),
    ("source", pa.string()),
    ("meta", pa.string()),
])
DOCS_DIR = "docs"


def shard_name(index: int, prefix: str = DOCS_DIR) -> str:
    return f"{prefix}/part-{index:05d}.parquet"


def pending_shards(ctx: Any, n_inputs: int, empty: Callable[[], bytes]) -> list[int]:
    """Indices of the docs shards (one per input shard) that ``ctx`` (a StageContext) has not written
    yet. With no input shard, one empty docs shard (``empty()``'s bytes) is written, so that the next
    stage still finds a docs folder, and there is nothing left to do."""
    if not n_inputs:
        rel = shard_name(0)
        if not ctx.shard_done(rel):
            data = empty()
            ctx.write_shard(rel, lambda tmp: tmp.write_bytes(data))
        return []
    return [i for i in range(n_inputs) if not ctx.shard_done(shard_name(i))]


def write_table(table: pa.Table, path: Path) -> None:
    # Fixed writer options: identical input gives byte-identical files (digests stay stable on reruns).
    pq.write_table(table, path, compression="zstd", compression_level=3, write_statistics=False,
                   use_dictionary=["source"], store_schema=True)


def docs_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def doc_shards(folder: Path, prefix: str = DOCS_DIR) -> list[Path]:
    from pipeline.store import shard_files
    return shard_files(folder, prefix, ".parquet")


def iter_tables(folder: Path, columns: list[str] | None = None, prefix: str = DOCS_DIR,
                kept_only: bool = True) -> Iterator[pa.Table]:
    """Yield each shard as a table; rows with a non-null ``drop_reason`` are skipped unless asked for."""
    for path in doc_shards(folder, prefix):
        # one thread: pyarrow's pool costs more than it saves on shards of a few MB, and stages
        # already parallelise across shards
        table = pq.read_table(path, columns=columns, use_threads=False)
        if kept_only and "drop_reason" in pq.read_schema(path).names:
            mask = pq.read_table(path, columns=["drop_reason"], use_threads=False).column(0).is_null()
            table = table.filter(mask)
        yield table


def count_rows(folder: Path, prefix: str = DOCS_DIR) -> int:
    return sum(pq.ParquetFile(p).metadata.num_rows for p in doc_shards(folder, prefix))
