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
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

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
    "jsonl": (".jsonl", ".jsonl.gz", ".jsonl.zst", ".json", ".json.gz", ".json.zst", ".ndjson", ".ndjson.gz",
              ".ndjson.zst"), "parquet": (".parquet",),
    "csv": (".csv", ".csv.gz"), "tsv": (".tsv", ".tsv.gz", ".tab"),
}
# csv's default limit (131,072 chars per field) would abort a file with one long document; documents
# longer than ``max_doc_chars`` are split downstream (``split_huge``), so any field size is accepted. The
# limit is process-wide: it is set at each read, whatever other code did to it.
FIELD_LIMIT = 2**31 - 1


# What lmforge writes under the project root (stage outputs, saved run configs, the tracking store): a folder
# or glob that covers them ("data", "data/**/*.parquet") must not read them back as corpus, or every run would
# ingest the last one's output and change its own key. A file named exactly is read wherever it is.
GENERATED = ("data/work", "data/runs", "mlruns", ".prefect")


def resolve_paths(src: SourceConfig, base: Path, skipped: set[Path] | None = None) -> list[Path]:
    """Expand files, folders and glob patterns (relative to ``base``, the project root) into a sorted list of
    files; a folder or pattern leaves out what lmforge itself wrote there (``GENERATED``). A folder's files
    without a suffix of the source's kind are left out too, and added to ``skipped`` (ingest counts them)."""
    files: set[Path] = set()
    generated = [(base / g).resolve() for g in GENERATED]
    for pattern in src.paths:
        p = Path(pattern).expanduser()
        p = p if p.is_absolute() else base / p
        if p.is_dir():
            inside = [q for q in p.rglob("*") if q.is_file()]
            matches = [q for q in inside if _suffix_ok(q, src.kind)]
            if skipped is not None:
                skipped.update(q.resolve() for q in inside if not _suffix_ok(q, src.kind)
                               and not any(q.resolve().is_relative_to(g) for g in generated))
        elif p.is_file():
            matches = [p]
        else:
            matches = [Path(m) for m in glob.glob(str(p), recursive=True) if Path(m).is_file()]
        if not p.is_file():
            found = len(matches)
            matches = [m for m in matches if not any(m.resolve().is_relative_to(g) for g in generated)]
            if found and not matches:
                raise IngestError(f"source {src.name!r}: {pattern!r} matches only lmforge's own outputs "
                                  f"({found} file(s) under {', '.join(GENERATED)}), which are never read as corpus")
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
    yield from _paragraphs(text, rel)


def _paragraphs(text: str, rel: str) -> Iterator[Doc]:
    """Runs of non-blank lines; a blank line is empty or whitespace only. CRLF and a lone CR end a line
    too, so line numbers are what an editor shows."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    start = None
    for i, line in enumerate([*lines, ""]):  # a final blank line closes the last paragraph
        if line.strip():
            start = i if start is None else start
        elif start is not None:
            yield Doc(f"{rel}:{start + 1}", "\n".join(lines[start:i]), {"file": rel, "line": start + 1})
            start = None


def _open_lines(path: Path) -> Iterator[bytes]:
    name = path.name.lower()
    if name.endswith(".gz"):
        with gzip.open(path, "rb") as f:
            yield from f
    elif name.endswith(".zst"):
        yield from _zst_lines(path)
    else:
        with open(path, "rb") as f:
            yield from f


def _zst_lines(path: Path) -> Iterator[bytes]:
    """The lines of a .zst file, frame after frame. A file cut short raises EOFError, as gzip does (zstandard's
    stream reader ends quietly at a truncated frame: the documents after the cut were lost uncounted)."""
    import zstandard
    dctx = zstandard.ZstdDecompressor()
    dobj, fed, pending = dctx.decompressobj(), False, b""
    with open(path, "rb") as raw:
        while block := raw.read(1 << 20):
            while block:
                pending += dobj.decompress(block)
                fed, block = True, b""
                if dobj.eof:  # a frame ended; what follows starts the next one
                    block, dobj, fed = dobj.unused_data, dctx.decompressobj(), False
            *lines, pending = pending.split(b"\n")
            yield from (line + b"\n" for line in lines)
    if fed and not dobj.eof:
        raise EOFError(f"{path.name}: the zstd stream ends inside a frame (the file is cut short)")
    if pending:
        yield pending


def read_jsonl(path: Path, rel: str, src: SourceConfig) -> Iterator[Item]:
    """One document per line (JSON Lines); a ``.json`` file holding one JSON array is read as a document per
    element (``<file>:[<index>]``), not line by line."""
    lines = _open_lines(path)
    first = next(lines, b"")
    while first and not first.strip():
        first = next(lines, b"")
    if not first:
        yield Drop("empty_file", rel)
        return
    if (first.lstrip().removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"[") and ".json" in path.name.lower()
            and ".jsonl" not in path.name.lower()):
        yield from _json_array(first + b"".join(lines), rel, src)
        return
    lines.close()  # read again from the start, line by line
    for lineno, raw in enumerate(_open_lines(path), 1):
        if raw.strip():
            yield from _json_doc(raw, f"{rel}:{lineno}", rel, src, line=lineno)


def _load_json(data: bytes, src: SourceConfig, where: str, whole_file: bool = False) -> tuple[Any, str] | Drop:
    """(the value, its text) of JSON bytes, or a Drop: bytes that are not UTF-8, or JSON that does not parse
    (in a whole file, at its line)."""
    text = _decode(data, src, where)
    if isinstance(text, Drop):
        return text
    try:
        return json.loads(text), text
    except json.JSONDecodeError as e:
        if whole_file:
            return Drop("malformed_json", f"{where}:{e.lineno}", f"{e.msg} (the file is one JSON array: nothing read)")
        return Drop("malformed_json", where, str(e))


def _json_array(data: bytes, rel: str, src: SourceConfig) -> Iterator[Item]:
    loaded = _load_json(data, src, rel, whole_file=True)
    if isinstance(loaded, Drop):
        yield loaded
        return
    items, text = loaded
    if not isinstance(items, list):
        yield Drop("malformed_json", rel, f"a JSON {type(items).__name__}, not an array of objects")
        return
    if not items:
        yield Drop("empty_file", rel, "an empty JSON array")
        return
    escapes = _MAYBE_SURROGATE.search(text) is not None  # once for the file, not once per element
    for i, obj in enumerate(items):
        yield from _json_doc(obj, f"{rel}:[{i}]", rel, src, escapes=escapes, index=i)


def _json_doc(raw: bytes | Any, where: str, rel: str, src: SourceConfig, escapes: bool = False,
              **position: int) -> Iterator[Item]:
    """One JSON object (``raw``: a JSON Lines line, or an element already parsed, whose file ``escapes`` says
    whether it holds a surrogate escape) to a Doc or a Drop."""
    if isinstance(raw, bytes):
        loaded = _load_json(raw, src, where)
        if isinstance(loaded, Drop):
            yield loaded
            return
        obj, line = loaded
        escapes = _MAYBE_SURROGATE.search(line) is not None
    else:
        obj = raw
    if not isinstance(obj, dict) or src.text_field not in obj:
        yield Drop("missing_field", where, f"no field {src.text_field!r}")
        return
    text = obj[src.text_field]
    if text is None:  # null: no text, as a Parquet null is
        yield Drop("empty_text", where, f"{src.text_field!r} is null")
        return
    if isinstance(text, list) and text and all(isinstance(t, str) for t in text):
        text = "\n".join(text)  # a text kept as its lines or paragraphs (a poem's "paragraphs"): one a line
    if not isinstance(text, str):
        yield Drop("bad_field_type", where, f"{src.text_field!r} is {type(text).__name__}, not a string")
        return
    if not text.strip():
        yield Drop("empty_text", where)
        return
    meta = {k: _json_safe(v) for k, v in obj.items()
            if k != src.text_field and isinstance(v, (str, int, float, bool))}
    if escapes:
        fixed = _fix_surrogates(text, meta, src, where)
        if isinstance(fixed, Drop):
            yield fixed
            return
        text, meta = fixed
    yield Doc(where, text, _with_provenance(meta, file=rel, **position))


def _json_safe(v: str | int | float | bool) -> str | int | float | bool:
    """A meta value that standard JSON can hold: NaN and infinities (which Python's json reads from "NaN",
    "Infinity" or 1e400) are kept as the strings "nan", "inf", "-inf"."""
    return str(v) if isinstance(v, float) and not math.isfinite(v) else v


# A JSON escape of a UTF-16 surrogate (backslash-u D800 to DFFF): json.loads turns a lone one into a str that cannot be
# encoded as UTF-8 (pyarrow fails on it later, far from the file). Valid UTF-8 input holds no surrogate,
# so only lines with such an escape are checked.
_MAYBE_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
SURROGATE = re.compile("[\ud800-\udfff]")  # a lone surrogate: never UTF-8 text (tasks.readers too)


def _fix_surrogates(text: str, meta: dict, src: SourceConfig, where: str) -> tuple[str, dict] | Drop:
    """``text`` and ``meta`` with lone surrogates replaced by U+FFFD (``encoding_errors: replace``), else a Drop."""
    named = [(repr(src.text_field), text), *((f"name {k!r}", k) for k in meta),
             *((repr(k), v) for k, v in meta.items())]
    bad = [name for name, v in named if isinstance(v, str) and SURROGATE.search(v)]
    if not bad:
        return text, meta
    if src.encoding_errors != "replace":
        return Drop("lone_surrogate", where, f"field {bad[0]}: a \\ud800-\\udfff escape that is not half of a "
                                             "surrogate pair is not Unicode text")

    def fix(v):
        return SURROGATE.sub("\ufffd", v) if isinstance(v, str) else v
    return fix(text), {fix(k): fix(v) for k, v in meta.items()}


def _with_provenance(meta: dict, **provenance) -> dict:
    """``meta`` with the reader's provenance keys (file, line) written last, so that they win; a user field of
    the same name is kept under ``user_<name>`` (``user_user_<name>`` if that is taken too, and so on).
    Every file reader writes "file" and the stdlib sources never do: decontamination tells them apart by it."""
    out = dict(meta)
    for k in provenance:
        if k in out:
            alias = f"user_{k}"
            while alias in out or alias in provenance:
                alias = f"user_{alias}"
            out[alias] = out.pop(k)
    return {**out, **provenance}


def read_parquet(path: Path, rel: str, src: SourceConfig) -> Iterator[Item]:
    import pyarrow as pa
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
    kind = pf.schema_arrow.field(src.text_field).type
    value = kind.value_type if pa.types.is_dictionary(kind) else kind  # a categorical column of strings is text
    textual = (pa.types.is_string(value) or pa.types.is_large_string(value)
               or getattr(pa.types, "is_string_view", lambda _: False)(value))
    if not textual:  # bytes, numbers: one file-level drop
        yield Drop("bad_field_type", rel, f"column {src.text_field!r} is {kind}, not text: "
                                          f"{pf.metadata.num_rows} row(s) not read")
        return
    row = 0  # rows are counted from 0, as in the doc id and meta "row"
    for batch in pf.iter_batches(columns=[src.text_field], batch_size=4096):
        for text in batch.column(0).to_pylist():
            where = f"{rel}:{row}"
            if text is None:
                yield Drop("empty_text", where, f"{src.text_field!r} is null")
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
    records = csv_records(text, src.kind, rel)
    col: int | None = None
    if src.header:
        header = next(records, None)
        if header is None:
            yield Drop("empty_file", rel)
            return
        if isinstance(header[1], Drop):  # without a header there is no column to read
            yield Drop("missing_column", header[1].where, f"header row: {header[1].detail}; file not read")
            return
        if src.text_field not in header[1]:
            yield Drop("missing_column", rel, f"no column {src.text_field!r}; header: {header[1]}")
            return
        col, width = header[1].index(src.text_field), len(header[1])
    else:
        if not src.text_field.isdigit():
            raise IngestError(f"source {src.name!r}: text_field must be a column index when header is false")
        col, width = int(src.text_field), None
    seen = False
    for line, row in records:
        where = f"{rel}:{line}"
        seen = True
        if isinstance(row, Drop):
            yield row
        elif (width is not None and len(row) != width) or col >= len(row):
            yield Drop("malformed_row", where, f"{len(row)} fields, expected {width or col + 1}")
        elif not row[col].strip():
            yield Drop("empty_text", where)
        else:
            yield Doc(where, row[col], {"file": rel, "line": line})
    if not seen:
        yield Drop("empty_file", rel)


# A CSV file whose quotes do not pair up is re-read from the line after the broken record this many times at
# most (each re-read may parse to the end of the file); past that the rest of the file is one counted drop.
MAX_REREADS = 100


def csv_records(text: str, kind: str, rel: str) -> Iterator[tuple[int, list[str] | Drop]]:
    """(first line, fields) of each non-empty record, or (first line, Drop) for one csv cannot parse.

    TSV has no quoting: a field may start with '"' and holds it verbatim. CSV is parsed strictly; a record
    csv rejects is a ``malformed_row`` drop and reading goes on after it. An unclosed quote would swallow
    the lines after it (to the end of the file, or to a later stray quote): that record is dropped and
    reading restarts on the line after its first line."""
    lines = list(io.StringIO(text, newline=""))  # keeps "\r\n", "\n" and "\r" line ends as csv wants them
    opts = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if kind == "tsv" else {"delimiter": ",", "strict": True}
    csv.field_size_limit(FIELD_LIMIT)
    start, rereads = 0, 0
    while start < len(lines):
        rows = csv.reader(iter(lines[start:]), **opts)
        restart = None
        while restart is None:
            first = start + rows.line_num + 1
            try:
                row = next(rows)
            except StopIteration:
                return
            except csv.Error as e:
                yield first, Drop("malformed_row", f"{rel}:{first}", f"csv: {e}")
                if start + rows.line_num > first:  # it ran past its first line (an unclosed quote, closed or not
                    restart = first                 # later): the lines it swallowed are read again
                continue
            if row:
                yield first, row
        rereads += 1
        if rereads > MAX_REREADS:
            yield restart + 1, Drop("malformed_row", f"{rel}:{restart + 1}",
                                    f"lines {restart + 1}-{len(lines)} not read: more than {MAX_REREADS} unclosed "
                                    "quotes (is this file CSV? a TSV file is read with kind: tsv)")
            return
        start = restart


READERS = {"text": read_text_file, "markdown": read_text_file, "jsonl": read_jsonl,
           "parquet": read_parquet, "csv": read_delimited, "tsv": read_delimited}
