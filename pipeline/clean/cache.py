"""The attribute cache: normalized text + attributes per input shard, computed once.

Thresholds change often, attributes rarely. The cache lives outside the stage's output folder, under
``<work>/_cache/clean_attrs/<options key>/<shard digest>.parquet``: a folder per normalization options and
``ATTR_VERSION``, a file per input shard's content (its digest in the upstream manifest). A clean run with
new thresholds (a new stage key, a new output folder) finds the attributes there and only re-applies the
rules; a corpus of which one file changed recomputes only the shards whose bytes changed. Each file is
written atomically; a file present there is reused when its row count matches.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.clean.attributes import ATTR_VERSION, COLUMNS, compute, empty_row
from pipeline.clean.normalize import NormalizeOptions, normalize
from pipeline.configtypes import to_dict
from pipeline.store import DIGESTS, Manifest, atomic_output, canonical_json

CACHE_DIR = ("_cache", "clean_attrs")
PII_COLUMNS = {"pii_emails": pa.int32(), "pii_ips": pa.int32()}
SCHEMA = pa.schema([("text", pa.string()), *PII_COLUMNS.items(), *COLUMNS.items()])


def options_key(opt: NormalizeOptions) -> str:
    """The normalization options and ``ATTR_VERSION``: what the attributes of given bytes depend on."""
    payload = canonical_json({"normalize": to_dict(opt), "attr_version": ATTR_VERSION})
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def attr_dir(work: Path, opt: NormalizeOptions) -> Path:
    return work.joinpath(*CACHE_DIR, options_key(opt))


def shard_files(work: Path, upstream: Manifest, opt: NormalizeOptions) -> dict[Path, Path]:
    """Each upstream document shard, in order → its attribute file: named by the shard's content digest (the
    manifest's, else the store's stat-keyed digest for a folder without a listing), not its key or position, so a
    report-only rebuild upstream, or a change to other shards, finds it again."""
    from pipeline.documents import doc_shards
    folder, out = attr_dir(work, opt), {}
    for path in doc_shards(upstream.path):
        digest = upstream.files.get(path.relative_to(upstream.path).as_posix(), {}).get("digest")
        out[path] = folder / f"{digest or DIGESTS.digest(path)}.parquet"
    return out


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
