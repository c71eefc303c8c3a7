"""The attribute cache: normalized text + attributes per input shard, computed once.

Thresholds change often, attributes rarely. The cache lives outside the stage's output folder, under
``<work>/_cache/clean_attrs/<attr_key>/part-NNNNN.parquet``, keyed by the upstream documents (their
shards' digests), the normalization options and ``ATTR_VERSION``: a clean run with new
thresholds (a new stage key, a new output folder) finds the attributes there and only re-applies
the rules. Each shard is written atomically; a shard present there is reused.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.clean.attributes import ATTR_VERSION, COLUMNS, compute, empty_row
from pipeline.clean.normalize import NormalizeOptions, normalize
from pipeline.configtypes import to_dict
from pipeline.store import Manifest, atomic_output, canonical_json

CACHE_DIR = ("_cache", "clean_attrs")
PII_COLUMNS = {"pii_emails": pa.int32(), "pii_ips": pa.int32()}
SCHEMA = pa.schema([("text", pa.string()), *PII_COLUMNS.items(), *COLUMNS.items()])


def attr_key(upstream: Manifest, opt: NormalizeOptions) -> str:
    """The documents' content (their shards' digests, not the upstream's reports or key: a report-only
    rebuild upstream finds the attributes again), the normalization options and ``ATTR_VERSION``."""
    digests = {rel: info.get("digest") for rel, info in sorted(upstream.files.items()) if rel.startswith("docs/")}
    payload = canonical_json({"files": digests, "normalize": to_dict(opt), "attr_version": ATTR_VERSION})
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def attr_dir(work: Path, upstream: Manifest, opt: NormalizeOptions) -> Path:
    return work.joinpath(*CACHE_DIR, attr_key(upstream, opt))


def compute_table(texts: list[str | None], opt: NormalizeOptions) -> pa.Table:
    """Normalize each text and compute its attributes: the cache table of one shard."""
    rows = []
    for raw in texts:
        text, emails, ips = normalize(raw or "", opt)
        rows.append((text, emails, ips, *(compute(text) if text else empty_row())))
    columns = list(zip(*rows)) if rows else [[] for _ in SCHEMA]
    return pa.table([pa.array(col, type=f.type) for col, f in zip(columns, SCHEMA)], schema=SCHEMA)


def load_or_compute(path: Path, texts: list[str | None], opt: NormalizeOptions) -> tuple[pa.Table, bool]:
    """The cached table for one shard (computing and storing it if missing); True if computed."""
    if path.exists():
        table = pq.read_table(path)
        if table.num_rows == len(texts) and table.schema.equals(SCHEMA):
            return table, False
    table = compute_table(texts, opt)
    atomic_output(path, lambda tmp: pq.write_table(table, tmp, compression="zstd", compression_level=1))
    return table, True
