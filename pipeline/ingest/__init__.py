"""Ingest stage: named sources → document shards (Parquet: doc_id, text, source, meta).

Streaming with bounded memory: documents are written in shards of ``docs_per_shard``. A killed run
re-reads its inputs but skips the shards already written. Every loss is a counted ``Drop`` with a
reason and the file and line; a sample of each kind goes to ``reports/drops.json``.
"""
from __future__ import annotations

import csv
import hashlib
import re
import zlib
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Iterator

from pipeline import documents
from pipeline.ingest import stdlib
from pipeline.ingest.config import IngestConfig, SourceConfig
from pipeline.ingest.items import looks_utf16, text_encoding
from pipeline.ingest.readers import READERS, SUFFIXES, Doc, Drop, IngestError, open_raw, resolve_paths
from pipeline.stage import StageContext
from pipeline.store import DIGESTS

# 2: TSV unquoted, CSV strict, paragraphs split at whitespace-only lines, provenance wins; 3: a long document is
# cut at a paragraph break, else a sentence end, else a line break, else whitespace, never inside a word; a .json
# array file is a document per element; a null text is empty_text; a non-text Parquet column is one drop; 4: a .json
# file holding one pretty-printed object is one document (or one drop), not a drop per line
VERSION = "4"
REPORT_ONLY = ("samples_per_reason",)  # what changes only reports/: downstream keys leave it out (plan)
__all__ = ["VERSION", "IngestConfig", "SourceConfig", "IngestError", "run", "fingerprint"]


def fingerprint(cfg: IngestConfig, root: Path) -> str:
    """A digest of what the sources are now: each file's name (relative to the project: doc ids hold it) and
    content (a touch, a fresh clone or a moved project keeps the key; ``store.DIGESTS`` reads a file again only
    when its stat changed), and the Python for the stdlib sources."""
    h = hashlib.sha256()
    for src in cfg.sources:
        if src.kind.startswith("stdlib"):
            h.update(stdlib.fingerprint().encode())
            continue
        if src.split == "paragraph":  # 2: a paragraph holding invalid UTF-8 is dropped alone, not its whole file
            h.update(b"paragraphs 2\n")
        for p in resolve_paths(src, root):
            mark = DIGESTS.derived(p, f"codec-mark 1 {src.kind}", lambda f: _codec_mark(f, src.kind)) if src.kind in (
                "text", "markdown", "csv", "tsv") else ""  # (kept by stat as the digest is: read once per change)
            h.update(f"{_rel(p, root)}|{DIGESTS.digest(p)}{mark}\n".encode())
    return h.hexdigest()[:16]


def _codec_mark(path: Path, kind: str) -> str:
    """"|utf-16" (or utf-32) for a text, CSV or TSV file that starts with that codec's byte-order mark, "|gz" for a
    gzipped text file, "|nul-bytes" for one that looks like UTF-16 without its mark (``looks_utf16``): each read
    (or dropped) otherwise since these marks (only those files' keys change)."""
    gz = "|gz" if kind in ("text", "markdown") and path.name.endswith(".gz") else ""  # (read raw before)
    try:
        with open_raw(path) as f:
            head = f.read(4096)
    except _read_errors():  # (a damaged .gz: the stage counts it)
        return gz
    encoding = text_encoding(head[:4])
    return gz + ("" if encoding == "utf-8-sig" else f"|{encoding}") + ("|nul-bytes" if looks_utf16(head) else "")


CHECK_FILES, CHECK_RECORDS, CHECK_BYTES = 8, 1000, 1 << 16  # what planning reads of a source to find its text_field


def check(run_cfg: Any, root: Path) -> None:
    """At planning: a ``text_field`` that names nothing in a source's files. A misspelt key once emptied its source,
    each record a counted drop, while the run went on with the other sources. A source passes as soon as one of
    its first ``CHECK_FILES`` files has the field (a column in the Parquet schema or the CSV header, or a key of
    one of a JSON Lines file's first ``CHECK_RECORDS`` records); files that cannot be read are the stage's to
    report."""
    from pipeline.configtypes import ConfigError
    for src in run_cfg.ingest.sources:
        if src.kind not in ("jsonl", "parquet", "csv", "tsv") or (src.kind in ("csv", "tsv") and not src.header):
            continue
        seen: list[str] = []
        files = resolve_paths(src, root)[:CHECK_FILES]
        for path in files:
            try:
                found, what = _field_in(path, _rel(path, root), src)
            except (*_read_errors(), ValueError, UnicodeDecodeError, csv.Error):
                found, what = None, ""  # unreadable: the stage drops it, with its reason
            if found:
                break
            if found is False:
                seen.append(what)
        else:
            if seen:
                raise ConfigError(f"ingest.sources[{src.name}].text_field: {src.text_field!r} is in none of the "
                                  f"{len(files)} file(s) read: {'; '.join(seen[:3])}")


def _field_in(path: Path, rel: str, src: SourceConfig) -> tuple[bool | None, str]:
    """Whether ``src.text_field`` is in the file (None: it has nothing to tell, e.g. no JSON object), and what the
    file holds instead."""
    if src.kind == "parquet":
        import pyarrow.parquet as pq
        names = pq.read_schema(path).names
        return src.text_field in names, f"{rel} has the columns {names}"
    if src.kind in ("csv", "tsv"):
        with open_raw(path) as f:
            raw = f.read(CHECK_BYTES)
            head = raw.decode(text_encoding(raw[:4]), errors="replace").lstrip("\ufeff")
        first = head.replace("\r\n", "\n").replace("\r", "\n").split("\n", 1)[0]  # (CR-only line ends too)
        header = first.split("\t") if src.kind == "tsv" else next(csv.reader([first]), [])
        return (src.text_field in header) if first else None, f"{rel} has the header {header}"
    if not path.name.endswith(tuple(s for s in SUFFIXES["jsonl"] if "jsonl" in s or "ndjson" in s)):
        return None, ""  # a .json file is one value, parsed whole: not read at planning
    from itertools import islice
    items = list(islice(READERS[src.kind](path, rel, src), CHECK_RECORDS))
    missing = [i for i in items if isinstance(i, Drop) and i.reason == "missing_field"]
    if any(isinstance(i, Doc) for i in items):
        return True, ""
    if missing:
        return False, f"{missing[0].detail} ({missing[0].where})"
    return None, ""  # drops of other kinds only: no JSON object to read a key from


def _read_errors() -> tuple[type[BaseException], ...]:
    """What a damaged file raises while it is read: I/O errors, a truncated gzip stream (EOFError), a
    corrupt deflate stream (zlib.error), a corrupt zstd frame."""
    errors: tuple[type[BaseException], ...] = (OSError, EOFError, zlib.error)
    try:
        import zstandard
    except ImportError:  # pragma: no cover - zstandard is a dependency; .zst files need it
        return errors
    return (*errors, zstandard.ZstdError)


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


Found = tuple[list[Path], set[Path], dict[Path, tuple[str, str]]]


def _found(src: SourceConfig, root: Path) -> Found:
    skipped: set[Path] = set()
    odd: dict[Path, tuple[str, str]] = {}
    return resolve_paths(src, root, skipped, odd), skipped, odd


def _source_items(src: SourceConfig, root: Path, found: Found | None = None,
                  claimed: frozenset[Path] = frozenset()) -> Iterator[Doc | Drop]:
    """The documents and drops of one source. A file source's ``found``: its files, the files of another kind in
    its folders and what else it left out (``resolve_paths``); ``claimed``: files some source reads (not
    ``other_suffix`` then)."""
    if src.kind == "stdlib_docs":
        for local_id, text, meta in stdlib.iter_docs():
            yield Doc(local_id, text, meta)
    elif src.kind == "stdlib_source":
        for local_id, data, meta in stdlib.iter_source():
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as e:
                yield Drop("undecodable_bytes", local_id, f"invalid UTF-8 at byte {e.start}")
                continue
            yield Doc(local_id, text, meta) if text.strip() else Drop("empty_file", local_id)
    else:
        reader, errors = READERS[src.kind], _read_errors()
        assert found is not None, "a file source's files come resolved (_rows)"
        files, skipped, odd = found
        for path in sorted(skipped - set(files) - claimed):  # in a folder, of another kind, read by no source
            kinds = ", ".join(filter(None, SUFFIXES[src.kind]))
            yield Drop("other_suffix", _rel(path, root), f"not a {src.kind} file ({kinds}); name it in paths, or "
                                                           "give it a source of its kind")
        for path, (reason, detail) in sorted(odd.items()):  # no regular file; a file's second name
            yield Drop(reason, _rel(path, root), detail)
        for path in files:
            rel = _rel(path, root)
            n = 0
            try:
                for item in reader(path, rel, src):
                    n += isinstance(item, Doc)
                    yield item
            except errors as e:
                # Streaming readers (JSONL) have already yielded the documents before the damage: they stay.
                yield Drop("unreadable_file", rel, f"{type(e).__name__}: {e}; the {n} document(s) read from this "
                                                  "file before the error are kept")


# Where a long document may be cut, best first: a paragraph break, a sentence end (so that a sentence, and an
# evaluation text quoted in it, stays whole for decontamination), a line break, any whitespace. The cut falls in
# the window's second half when it can, so that no piece is short.
_BREAKS = (re.compile(r"\n[ \t\r\f\v]*\n"), re.compile(r"[.!?][\"')\]]*\s+|[。！？]"), re.compile(r"\n"),
           re.compile(r"\s+"))


def split_huge(text: str, limit: int) -> list[str]:
    """Split a text longer than ``limit`` chars into pieces of at most ``limit``, each cut at the best break
    of ``_BREAKS`` in its window; a cut inside a word only where a window holds no whitespace at all."""
    if len(text) <= limit:
        return [text]
    parts, start = [], 0
    while len(text) - start > limit:
        cut = _cut(text[start:start + limit])
        parts.append(text[start:start + cut])
        start += cut
    parts.append(text[start:])
    return parts


def _cut(window: str) -> int:
    for lowest in (len(window) // 2, 1):
        for pattern in _BREAKS:
            ends = [m.end() for m in pattern.finditer(window, lowest)]
            if ends:
                return ends[-1]
    return len(window)


def _rows(cfg: IngestConfig, root: Path, drops: dict[str, list], counts: Counter) -> Iterator[dict[str, Any]]:
    found = {i: _found(src, root) for i, src in enumerate(cfg.sources) if src.kind in READERS}  # one glob each
    claimed = frozenset(p for files, _, odd in found.values() for p in [*files, *odd])  # (counted by one source)
    seen: set[Path] = set()
    for i, (files, skipped, odd) in sorted(found.items()):  # an entry no source can read: the first counts it
        found[i] = files, skipped, {p: v for p, v in odd.items() if v[0] != "unreadable_file" or p not in seen}
        seen.update(odd)
    for i, src in enumerate(cfg.sources):
        n = 0
        for item in _source_items(src, root, found.get(i), claimed):
            if isinstance(item, Drop):
                counts[f"dropped.{item.reason}"] += item.rows
                counts[f"source.{src.name}.dropped"] += item.rows
                if len(drops[item.reason]) < cfg.samples_per_reason:
                    drops[item.reason].append({"source": src.name, "where": item.where, "detail": item.detail})
                continue
            if src.max_docs is not None and n >= src.max_docs:
                break
            n += 1
            if src.encoding_errors == "replace" and (replaced := item.text.count("\ufffd")):
                counts[f"source.{src.name}.replacement_chars"] += replaced  # (bad bytes, or U+FFFD already there)
            pieces = split_huge(item.text, cfg.max_doc_chars)
            if len(pieces) > 1:
                counts["split_huge_docs"] += 1
            for i, piece in enumerate(pieces):
                meta = dict(item.meta, part=i) if len(pieces) > 1 else item.meta
                doc_id = f"{src.name}:{item.local_id}" + (f"#{i}" if len(pieces) > 1 else "")
                counts[f"source.{src.name}.docs"] += 1
                counts["chars"] += len(piece)
                yield {"doc_id": doc_id, "text": piece, "source": src.name, "meta": stdlib.meta_json(meta)}


def run(cfg: IngestConfig, ctx: StageContext) -> dict[str, Any]:
    drops: dict[str, list] = defaultdict(list)
    counts: Counter = Counter()
    progress = ctx.progress(unit="docs")
    shard, batch, docs = 0, [], 0

    def flush() -> None:
        nonlocal shard, batch
        rel = documents.shard_name(shard)
        if not ctx.shard_done(rel):
            table = documents.docs_table(batch)
            ctx.write_shard(rel, lambda tmp: documents.write_table(table, tmp))
        shard, batch = shard + 1, []

    for row in _rows(cfg, ctx.root, drops, counts):
        batch.append(row)
        docs += 1
        progress.update(1)
        if len(batch) >= cfg.docs_per_shard:
            flush()
    if batch:
        flush()
    progress.close()
    if docs == 0:
        raise IngestError("ingest produced no documents: every input was empty or dropped "
                          f"({dict(counts)}); see the sources in the ingest config")
    ctx.write_report("drops.json", {"counts": {k: v for k, v in counts.items() if k.startswith("dropped.")},
                                    "samples": drops})
    return {"docs": docs, "shards": shard, "dropped": sum(v for k, v in counts.items() if k.startswith("dropped.")),
            **dict(counts)}
