"""Readers for user files. Each yields ``Doc`` or ``Drop`` items, streaming and in a stable order.

A ``Drop`` is a counted, reasoned loss with the file and line (or row) where it happened, never a
silent skip. A pattern that matches no file at all is an error: the run would be meaningless.
"""
from __future__ import annotations

import csv
import glob
import gzip
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from pipeline.ingest.config import SourceConfig


class IngestError(ValueError):
    """The input makes the run meaningless (e.g. no file matches a pattern)."""


@dataclass(frozen=True)
class Doc:
    local_id: str
    text: str
    meta: dict


@dataclass(frozen=True)
class Drop:
    reason: str
    where: str
    detail: str = ""


Item = Doc | Drop
SUFFIXES = {
    "text": (".txt", ".text", ""), "markdown": (".md", ".markdown", ".rst", ".txt"),
    "jsonl": (".jsonl", ".jsonl.gz", ".jsonl.zst", ".json", ".ndjson"), "parquet": (".parquet",),
    "csv": (".csv", ".csv.gz"), "tsv": (".tsv", ".tsv.gz", ".tab"),
}


def resolve_paths(src: SourceConfig, base: Path) -> list[Path]:
    """Expand files, folders and glob patterns (relative to ``base``) into a sorted list of files."""
    files: set[Path] = set()
    for pattern in src.paths:
        p = Path(pattern).expanduser()
        p = p if p.is_absolute() else base / p
        if p.is_dir():
            matches = [q for q in p.rglob("*") if q.is_file() and _suffix_ok(q, src.kind)]
        else:
            matches = [Path(m) for m in glob.glob(str(p), recursive=True) if Path(m).is_file()]
        if not matches:
            raise IngestError(f"source {src.name!r}: no file matches {pattern!r} (looked in {p})")
        files.update(m.resolve() for m in matches)
    return sorted(files)


def _suffix_ok(path: Path, kind: str) -> bool:
    name = path.name.lower()
    return any(name.endswith(s) for s in SUFFIXES[kind] if s) or (kind == "text" and "." not in name)


def _decode(data: bytes, src: SourceConfig, where: str) -> str | Drop:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        if src.encoding_errors == "replace":
            return data.decode("utf-8-sig", errors="replace")
        return Drop("undecodable_bytes", where, f"invalid UTF-8 at byte {e.start}")


def read_text_file(path: Path, rel: str, src: SourceConfig) -> Iterator[Item]:
    text = _decode(path.read_bytes(), src, rel)
    if isinstance(text, Drop):
        yield text
        return
    if not text.strip():
        yield Drop("empty_file", rel)
        return
    if src.split == "file":
        yield Doc(rel, text, {"file": rel})
        return
    line = 1
    for para in text.replace("\r\n", "\n").split("\n\n"):
        if para.strip():
            first = line + len(para) - len(para.lstrip("\n"))  # the line its text starts on
            yield Doc(f"{rel}:{first}", para.strip("\n"), {"file": rel, "line": first})
        line += para.count("\n") + 2


def _open_lines(path: Path) -> Iterator[bytes]:
    name = path.name.lower()
    if name.endswith(".gz"):
        with gzip.open(path, "rb") as f:
            yield from f
    elif name.endswith(".zst"):
        import zstandard
        with open(path, "rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as f:
            yield from io.BufferedReader(f)
    else:
        with open(path, "rb") as f:
            yield from f


def read_jsonl(path: Path, rel: str, src: SourceConfig) -> Iterator[Item]:
    seen = False
    for lineno, raw in enumerate(_open_lines(path), 1):
        if not raw.strip():
            continue
        seen = True
        where = f"{rel}:{lineno}"
        line = _decode(raw, src, where)
        if isinstance(line, Drop):
            yield line
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            yield Drop("malformed_json", where, str(e))
            continue
        if not isinstance(obj, dict) or src.text_field not in obj:
            yield Drop("missing_field", where, f"no field {src.text_field!r}")
            continue
        text = obj[src.text_field]
        if not isinstance(text, str):
            yield Drop("bad_field_type", where, f"{src.text_field!r} is {type(text).__name__}, not a string")
            continue
        if not text.strip():
            yield Drop("empty_text", where)
            continue
        meta = {k: v for k, v in obj.items() if k != src.text_field and isinstance(v, (str, int, float, bool))}
        yield Doc(f"{rel}:{lineno}", text, {"file": rel, "line": lineno, **meta})
    if not seen:
        yield Drop("empty_file", rel)


def read_parquet(path: Path, rel: str, src: SourceConfig) -> Iterator[Item]:
    import pyarrow.parquet as pq
    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # not a Parquet file at all
        yield Drop("unreadable_file", rel, f"{type(e).__name__}: {e}")
        return
    if src.text_field not in pf.schema_arrow.names:
        yield Drop("missing_column", rel, f"no column {src.text_field!r}; columns: {pf.schema_arrow.names}")
        return
    if pf.metadata.num_rows == 0:
        yield Drop("empty_file", rel)
        return
    row = 0
    for batch in pf.iter_batches(columns=[src.text_field], batch_size=4096):
        for text in batch.column(0).to_pylist():
            where = f"{rel}:{row}"
            if not isinstance(text, str):
                yield Drop("bad_field_type" if text is not None else "empty_text", where)
            elif not text.strip():
                yield Drop("empty_text", where)
            else:
                yield Doc(where, text, {"file": rel, "row": row})
            row += 1


def read_delimited(path: Path, rel: str, src: SourceConfig) -> Iterator[Item]:
    text = _decode(gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes(),
                   src, rel)
    if isinstance(text, Drop):
        yield text
        return
    rows = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if src.kind == "tsv" else ",")
    col: int | None = None
    if src.header:
        header = next(rows, None)
        if header is None:
            yield Drop("empty_file", rel)
            return
        if src.text_field not in header:
            yield Drop("missing_column", rel, f"no column {src.text_field!r}; header: {header}")
            return
        col, width = header.index(src.text_field), len(header)
    else:
        if not src.text_field.isdigit():
            raise IngestError(f"source {src.name!r}: text_field must be a column index when header is false")
        col, width = int(src.text_field), None
    seen = False
    for row in rows:
        line = rows.line_num
        where = f"{rel}:{line}"
        if not row:
            continue
        seen = True
        if (width is not None and len(row) != width) or col >= len(row):
            yield Drop("malformed_row", where, f"{len(row)} fields, expected {width or col + 1}")
        elif not row[col].strip():
            yield Drop("empty_text", where)
        else:
            yield Doc(where, row[col], {"file": rel, "line": line})
    if not seen:
        yield Drop("empty_file", rel)


READERS = {"text": read_text_file, "markdown": read_text_file, "jsonl": read_jsonl,
           "parquet": read_parquet, "csv": read_delimited, "tsv": read_delimited}
