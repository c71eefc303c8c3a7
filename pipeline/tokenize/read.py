"""Reading the upstream documents: ``documents.iter_tables``'s kept rows, decoded on this thread.

pyarrow's default reader decodes with its thread pool; on a small shared box that costs more CPU than the
decompression itself (measured here: 0.01-0.35 CPU-s to read a 4 MB shard vs 0.008 s single-threaded),
a large share of encoding time for a fast unigram model. Rows and order are those of
``documents.iter_tables(kept_only=True)``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import documents


def iter_kept(folder: Path, columns: list[str]) -> Iterator[pa.Table]:
    for path in documents.doc_shards(folder):
        f = pq.ParquetFile(path)
        names = f.schema_arrow.names
        extra = ["drop_reason"] if "drop_reason" in names and "drop_reason" not in columns else []
        table = f.read(columns=columns + extra, use_threads=False)
        if "drop_reason" in names:
            table = table.filter(table.column("drop_reason").is_null()).drop_columns(extra)
        yield table
