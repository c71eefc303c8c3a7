"""Readers for user files. Each yields ``Doc`` or ``Drop`` items, streaming and in a stable order.

A ``Drop`` is a counted, reasoned loss with the file and line (or row) where it happened, never a
silent skip. A pattern that matches no file at all is an error: the run would be meaningless.
"""
from __future__ import annotations

import csv
import glob
import gzip
import io
import os
import re
from pathlib import Path
from typing import Any, Iterator

from pipeline.ingest.config import SourceConfig
from pipeline.ingest.items import SURROGATE, Doc, Drop, IngestError, Item, decode, looks_utf16, text_encoding

from pipeline.ingest.jsonl import read_jsonl


SUFFIXES = {
    "text": (".txt", ".text", ".txt.gz", ""), "markdown": (".md", ".markdown", ".rst", ".txt"),
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


def resolve_paths(src: SourceConfig, base: Path, skipped: set[Path] | None = None,
                  odd: dict[Path, tuple[str, str]] | None = None) -> list[Path]:
    """Expand files, folders and glob patterns (relative to ``base``, the project root) into a sorted list of
    files (their real paths: a file reached twice, through a link or another path, is one file); a folder or
    pattern leaves out what lmforge itself wrote there (``GENERATED``). A folder's files without a suffix of the
    source's kind are left out too, and added to ``skipped``; ``odd`` gets (reason, detail) for what is left out
    otherwise: an entry of a folder that is no regular file (a link to nothing or that loops, a linked folder, a
    named pipe), and each further name of a file already listed (ingest counts them all)."""
    names: dict[Path, set[Path]] = {}  # each file's real path: the names it was found under
    generated = [(base / g).resolve() for g in GENERATED]
    for pattern in src.paths:
        p = Path(pattern).expanduser()
        p = p if p.is_absolute() else base / p
        if p.is_dir():
            entries = list(p.rglob("*"))
            matches = [q for q in entries if q.is_file() and _suffix_ok(q, src.kind)]  # (lmforge's own: below)
            for q in entries:
                if q.is_file() and _suffix_ok(q, src.kind) or q.is_dir() and not q.is_symlink():
                    continue  # read, or a folder the walk goes through
                if _inside(q, generated):
                    continue  # lmforge's own
                if q.is_file() or not _suffix_ok(q, src.kind) and not q.is_dir():  # another kind's
                    if skipped is not None:
                        skipped.add(q.resolve() if q.is_file() else q.absolute())
                elif odd is not None:  # no regular file: a link to nothing, a named pipe, a linked folder
                    odd[q.absolute()] = ("unreadable_file", f"{_not_a_file(q)}, not a file to read")
        elif p.is_file():
            matches = [p]
        elif p.is_symlink() or p.exists():
            raise IngestError(f"source {src.name!r}: {pattern!r} is {_not_a_file(p)}, not a file to read")
        else:
            matches = [Path(m) for m in glob.glob(str(p), recursive=True) if Path(m).is_file()]
        if not p.is_file():
            found = len(matches)
            matches = [m for m in matches if not _inside(m, generated)]
            if found and not matches:
                raise IngestError(f"source {src.name!r}: {pattern!r} matches only lmforge's own outputs "
                                  f"({found} file(s) under {', '.join(GENERATED)}), which are never read as corpus")
        if not matches:
            raise IngestError(f"source {src.name!r}: no file matches {pattern!r} (looked in {p})")
        for m in matches:
            names.setdefault(m.resolve(), set()).add(Path(os.path.normpath(m.absolute())))
    if odd is not None:
        for real, seen in names.items():  # the real path's own name first, when it was named
            first, *others = sorted(seen, key=lambda n: (n != real, str(n)))
            for name in others:
                odd[name] = ("same_file", f"the same file as {_shown(first, base)} (a symbolic link to it, or a "
                                          "path through one): read once")
    return sorted(names)


def _inside(path: Path, folders: list[Path]) -> bool:
    """Whether ``path`` is, once its links are followed, in one of ``folders`` (a link that loops is not)."""
    try:
        real = path.resolve()
    except (RuntimeError, OSError):  # (Python < 3.13: RuntimeError for a loop)
        return False
    return any(real.is_relative_to(f) for f in folders)


def _not_a_file(path: Path) -> str:
    if path.is_symlink():
        if path.is_dir():
            return "a link to a folder (not followed in a folder: name that folder in paths)"
        if not path.exists():
            try:
                path.resolve(strict=True)
            except FileNotFoundError:
                return f"a link to nothing ({os.readlink(path)} does not exist)"
            except (RuntimeError, OSError):
                return "a link that loops"
    return next((what for test, what in (("is_fifo", "a named pipe"), ("is_socket", "a socket"),
                                         ("is_block_device", "a device"), ("is_char_device", "a device"))
                 if getattr(path, test)()), "not a regular file")


def _shown(path: Path, base: Path) -> str:
    return path.relative_to(base).as_posix() if path.is_relative_to(base) else str(path)


def open_raw(path: Path) -> Any:
    """A corpus file opened for its bytes, decompressed when it is a ``.gz``."""
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def raw_bytes(path: Path) -> bytes:
    with open_raw(path) as f:
        return f.read()


def _suffix_ok(path: Path, kind: str) -> bool:
    name = path.name.lower()
    return any(name.endswith(s) for s in SUFFIXES[kind] if s) or (kind == "text" and "." not in name)


def read_text_file(path: Path, rel: str, src: SourceConfig) -> Iterator[Item]:
    data = raw_bytes(path)
    text = decode(data, src, rel)
    # only the paragraphs that hold the bad bytes go (UTF-8: a UTF-16 or UTF-32 file that does not decode is dropped)
    if isinstance(text, Drop) and src.split == "paragraph" and text_encoding(data[:4]) == "utf-8-sig" and \
            not looks_utf16(data):
        text = data.decode("utf-8-sig", errors="surrogateescape")  # a bad byte: a lone surrogate, U+DC80..U+DCFF
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


_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


def _paragraphs(text: str, rel: str) -> Iterator[Item]:
    """Runs of non-blank lines; a blank line is empty or whitespace only. CRLF and a lone CR end a line
    too, so line numbers are what an editor shows. A paragraph holding an escaped bad byte is a drop."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    start = None
    for i, line in enumerate([*lines, ""]):  # a final blank line closes the last paragraph
        if line.strip():
            start = i if start is None else start
        elif start is not None:
            para, where = "\n".join(lines[start:i]), f"{rel}:{start + 1}"
            if bad := _ESCAPED_BYTE.search(para):
                line_no = start + 1 + para.count("\n", 0, bad.start())
                yield Drop("undecodable_bytes", where, f"invalid UTF-8 in line {line_no}: byte "
                           f"0x{ord(bad.group()) - 0xDC00:02x}; the paragraph is dropped")
            else:
                yield Doc(where, para, {"file": rel, "line": start + 1})
            start = None


def read_parquet(path: Path, rel: str, src: SourceConfig) -> Iterator[Item]:
    import pyarrow as pa
    import pyarrow.parquet as pq
    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # not a Parquet file at all
        yield Drop("unreadable_file", rel, f"{type(e).__name__}: {e}")
        return
    if src.text_field not in pf.schema_arrow.names:
        rows = pf.metadata.num_rows
        yield Drop("missing_column", rel, f"no column {src.text_field!r}; columns: {pf.schema_arrow.names}: "
                                          f"{rows} row(s) not read", rows=max(rows, 1))
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
                                          f"{pf.metadata.num_rows} row(s) not read", rows=pf.metadata.num_rows)
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
    text = decode(raw_bytes(path), src, rel)
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

__all__ = ["READERS", "SUFFIXES", "GENERATED", "IngestError", "Doc", "Drop", "Item", "SURROGATE", "csv_records",
           "resolve_paths", "read_text_file", "read_jsonl", "read_parquet", "read_delimited"]
