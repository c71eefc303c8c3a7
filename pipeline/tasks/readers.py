"""Task file readers: CSV / TSV, JSON Lines and CoNLL column files, to raw records or counted drops.

A reader yields ``Record`` (the fields it found, with the file and line it came from) or ``Drop`` (a
reason, the file and line, a detail). Checking labels against a label list happens later
(``pipeline.tasks.load``); readers only refuse what cannot become a record at all.
"""
from __future__ import annotations

import io
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, TextIO

from pipeline.ingest.items import SURROGATE, text_encoding
from pipeline.ingest.readers import csv_records
from pipeline.tasks.config import TaskConfig


class TaskError(ValueError):
    """A task cannot be built (unreadable file, no usable rows...); the message names the file."""


@dataclass
class Record:
    origin: str  # "file:line"
    text: str | None = None
    text_pair: str | None = None
    label: str | None = None
    tokens: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    unit: str | None = None  # the held-out unit of a derived task (a stdlib module or topic)


@dataclass
class Drop:
    reason: str
    origin: str
    detail: str = ""


def detect_format(path: Path, cfg: TaskConfig) -> str:
    if cfg.format != "auto":
        return cfg.format
    name = path.name.lower()
    for suffix, fmt in ((".csv", "csv"), (".tsv", "tsv"), (".jsonl", "jsonl"), (".json", "jsonl"), (".conll", "conll")):
        if name.endswith(suffix):
            return fmt
    if cfg.kind == "tagging":
        return "conll"
    raise TaskError(f"task {cfg.name}: cannot tell the format of {path} from its suffix; set format "
                    "(csv, tsv, jsonl, conll)")


def _column(fields: str, header: list[str] | None, path: Path, what: str) -> int:
    """A column by name (with a header) or by 0-based index."""
    if header is not None and fields in header:
        return header.index(fields)
    if fields.lstrip("-").isdigit():
        return int(fields)
    raise TaskError(f"{path}: no column {fields!r} for {what}; header has {header}")


BAD_BYTES = "bytes that are not UTF-8"
NUL = "a NUL character (a UTF-16 file without its byte-order mark?)"


def open_text(path: Path, newline: str | None = None) -> TextIO:
    """A task file as text, so that a row holding bytes its codec cannot read is dropped as ``bad_encoding`` with
    its line instead of silently altered: UTF-8 (a leading BOM dropped) with undecodable bytes kept as lone
    surrogates; UTF-16 or UTF-32 when a byte-order mark says so (a spreadsheet's "Unicode text"), with unpaired
    surrogates kept as such and a cut last code unit as one more."""
    with open(path, "rb") as f:
        encoding = text_encoding(f.read(4))
    if encoding == "utf-8-sig":
        return open(path, encoding=encoding, errors="surrogateescape", newline=newline)
    data = path.read_bytes()
    cut = len(data) % (4 if encoding == "utf-32" else 2)
    text = data[:len(data) - cut].decode(encoding, errors="surrogatepass") + ("\udc80" if cut else "")
    return io.StringIO(text, newline=newline)


def _bad_text(*values: object) -> str | None:
    """What makes a string no text, if anything: a surrogate (an undecodable byte, or a lone ``\\ud800`` escape of
    JSON: ``BAD_BYTES``) or a NUL (``NUL``: UTF-16 read as UTF-8 is every other byte NUL)."""
    for v in values:
        if isinstance(v, str):
            if "\x00" in v:
                return NUL
            if SURROGATE.search(v):
                return BAD_BYTES
    return None


def column_index(col: int) -> int:
    """The smallest row length that holds column ``col`` minus one (negative indexes count from the end)."""
    return col if col >= 0 else -col - 1


def read_delimited(path: Path, rel: str, cfg: TaskConfig, delimiter: str) -> Iterator[Record | Drop]:
    """Rows of a CSV / TSV file (``csv_records``: a record that csv cannot parse, such as a stray or unclosed
    quote, is a ``malformed_row`` and reading goes on after it). Every row must have as many fields as the
    header (or, without one, as most rows have): a row with more or fewer is dropped as ``ragged_row`` rather
    than read from shifted columns."""
    pair = cfg.kind == "pair_classification"
    # TSV without quoting (GLUE-style TSVs hold bare quotes inside fields), CSV strictly: see csv_records.
    with open_text(path, newline="") as f:
        rows = csv_records(f.read(), "tsv" if delimiter == "\t" else "csv", rel)
    first = next(rows, None) if cfg.header else None
    header = first[1] if first is not None and isinstance(first[1], list) else None
    if cfg.header and header is None and first is not None:
        raise TaskError(f"{rel}:{first[0]}: the header row cannot be read ({first[1].detail})")
    cols = {"text": _column(cfg.text_field, header, path, "text_field"),
            "label": _column(cfg.label_field, header, path, "label_field")}
    if pair:
        cols["text_pair"] = _column(cfg.text_pair_field, header, path, "text_pair_field")
    need = max(column_index(c) for c in cols.values())
    body = [(i, r) for i, r in rows if not isinstance(r, list) or len(r) > 1 or r[0].strip()]
    widths = Counter(len(r) for _, r in body if isinstance(r, list))
    width = len(header) if header is not None else (widths.most_common(1)[0][0] if widths else 0)
    for line, row in body:
        origin = f"{rel}:{line}"
        if not isinstance(row, list):
            yield Drop("malformed_row", origin, row.detail)
        elif len(row) <= need:
            yield Drop("missing_field", origin, f"{len(row)} column(s), need column {need}")
        elif len(row) != width:
            yield Drop("ragged_row", origin, f"{len(row)} fields, the {'header' if header else 'file'} has "
                       f"{width}: a delimiter inside an unquoted field?")
        elif bad := _bad_text(*row):
            yield Drop("bad_encoding", origin, bad)
        else:
            yield Record(origin, text=row[cols["text"]], label=row[cols["label"]],
                         text_pair=row[cols["text_pair"]] if pair else None)


def json_array(path: Path) -> list | None:
    """The elements of a ``.json`` task file that holds one JSON array (a record each, named ``file:[i]``, as the
    corpus reader names them); None for any other file, read as JSON Lines."""
    if not path.name.lower().endswith(".json"):
        return None
    with open_text(path) as f:
        text = f.read()
    if not text.lstrip().startswith("["):
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise TaskError(f"{path.name}:{e.lineno}: the file is one JSON array, and it does not parse ({e.msg}): "
                        "nothing read") from None
    return value if isinstance(value, list) else None


def read_jsonl(path: Path, rel: str, cfg: TaskConfig) -> Iterator[Record | Drop]:
    """JSON Lines, or a ``.json`` file holding an array of objects (``json_array``)."""
    if (items := json_array(path)) is not None:
        for i, obj in enumerate(items):
            if isinstance(obj, dict):
                yield _json_record(obj, f"{rel}:[{i}]", cfg)
            else:
                yield Drop("bad_json", f"{rel}:[{i}]", f"expected an object, got {type(obj).__name__}")
        return
    with open_text(path) as f:
        for i, line in enumerate(f, 1):
            origin = f"{rel}:{i}"
            if not line.strip():
                continue
            if bad := _bad_text(line):
                yield Drop("bad_encoding", origin, bad)
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                yield Drop("bad_json", origin, str(e))
                continue
            if not isinstance(obj, dict):
                yield Drop("bad_json", origin, f"expected an object, got {type(obj).__name__}")
                continue
            yield _json_record(obj, origin, cfg)


def _json_record(obj: dict, origin: str, cfg: TaskConfig) -> Record | Drop:
    """Texts and tokens must be strings, labels and tags strings or integers: anything else (a list, an
    object, a number where text belongs) is dropped as ``bad_field_type`` instead of read as its repr."""
    if cfg.kind == "tagging":
        tokens, tags = obj.get(cfg.text_field), obj.get(cfg.label_field)
        absent = [k for k in (cfg.text_field, cfg.label_field) if obj.get(k) is None]
        if absent:
            return Drop("missing_field", origin, f"no {' and no '.join(map(repr, absent))}")
        if not isinstance(tokens, list) or not isinstance(tags, list):
            return Drop("bad_field_type", origin, f"{cfg.text_field!r} and {cfg.label_field!r} must be lists")
        if not all(isinstance(t, str) for t in tokens) or not all(_is_label(t) for t in tags):
            return Drop("bad_field_type", origin, f"{cfg.text_field!r} must hold strings, {cfg.label_field!r} "
                        "strings or integers")
        if bad := _bad_text(*tokens, *tags):
            return Drop("bad_encoding", origin, "a lone surrogate escape" if bad == BAD_BYTES else bad)
        if any(not isinstance(t, str) for t in tags):
            return _tag_ids(tokens, tags, origin, cfg)
        return Record(origin, tokens=list(tokens), tags=list(tags))
    names = [cfg.text_field] + ([cfg.text_pair_field] if cfg.kind == "pair_classification" else [])
    if absent := [n for n in names if n not in obj]:  # (a null or empty one is empty_text, as in CSV)
        return Drop("missing_field", origin, f"no {' and no '.join(map(repr, absent))}")
    for name in names:
        if obj.get(name) is not None and not isinstance(obj[name], str):
            return Drop("bad_field_type", origin, f"{name!r} must be a string, got {type(obj[name]).__name__}")
    label = obj.get(cfg.label_field)
    if label is not None and not _is_label(label):
        return Drop("bad_field_type", origin, f"{cfg.label_field!r} must be a string or an integer, "
                    f"got {type(label).__name__}")
    if bad := _bad_text(label, *(obj.get(n) for n in names)):
        return Drop("bad_encoding", origin, "a lone surrogate escape" if bad == BAD_BYTES else bad)
    return Record(origin, text=obj.get(cfg.text_field), label=None if label is None else _label_text(label),
                  text_pair=obj.get(cfg.text_pair_field) if cfg.kind == "pair_classification" else None)


def _tag_ids(tokens: list[str], tags: list, origin: str, cfg: TaskConfig) -> Record | Drop:
    """Tags as class ids (Hugging Face datasets' ``ner_tags``): the id-th tag of the task's ``labels``."""
    where = f"{cfg.label_field!r}"
    if not all(isinstance(t, (int, float)) for t in tags):
        return Drop("bad_field_type", origin, f"{where} mixes strings and integers")
    if cfg.labels is None:
        return Drop("bad_field_type", origin, f"{where} holds tag ids: the task's labels must list the tags they "
                    "stand for, in id order (e.g. labels: [O, B-PER, I-PER, ...])")
    if outside := [int(t) for t in tags if not 0 <= int(t) < len(cfg.labels)]:
        return Drop("unknown_label", origin, f"tag id {outside[0]} is not one of the {len(cfg.labels)} labels' ids "
                    f"(0 to {len(cfg.labels) - 1})")
    return Record(origin, tokens=list(tokens), tags=[cfg.labels[int(t)] for t in tags])


def _is_label(v: object) -> bool:
    """A string or an integer; a whole float too (pandas writes 1.0 for an integer column that has a gap)."""
    return isinstance(v, str) or (isinstance(v, (int, float)) and not isinstance(v, bool) and float(v).is_integer())


def _label_text(v: str | int | float) -> str:
    return v if isinstance(v, str) else str(int(v))


def conll_width(lines: list[str]) -> int:
    """How many columns most of a CoNLL file's lines have (blank and ``-DOCSTART-`` lines aside); 0: none."""
    widths = Counter(len(c) for c in map(str.split, lines) if c and c[0] != "-DOCSTART-")
    return widths.most_common(1)[0][0] if widths else 0


def read_conll(path: Path, rel: str, cfg: TaskConfig) -> Iterator[Record | Drop]:
    """Sentences of a column file: blank lines and ``-DOCSTART-`` lines end a sentence. Every line has as
    many columns as most of the file's lines (not its first: one bad first line once dropped every sentence);
    a sentence with a line that has not is dropped whole."""
    tokens: list[str] = []
    tags: list[str] = []
    start, bad = 0, None
    with open_text(path) as f:
        lines = [*f, ""]  # a final "" closes the last sentence
    width = conll_width(lines)
    for i, line in enumerate(lines, 1):
        cols = line.split()
        if not cols or cols[0] == "-DOCSTART-":
            if bad:
                yield Drop(bad[0], f"{rel}:{bad[1]}", bad[2])
            elif tokens:
                yield Record(f"{rel}:{start}", tokens=tokens, tags=tags)
            tokens, tags, bad = [], [], None
            continue
        if not tokens and not bad:
            start = i
        if bad:
            continue
        if len(cols) < 2 or len(cols) != width:  # a single column cannot be both the token and the tag
            bad = ("misaligned_tags", i, f"{len(cols)} column(s), most of the file's lines have {width}")
            continue
        if why := _bad_text(line):
            bad = ("bad_encoding", i, why)
            continue
        try:
            tok, tag = cols[cfg.token_column], cols[cfg.tag_column]
        except IndexError:
            missing = next(f"{k} {c}" for k, c in (("token_column", cfg.token_column), ("tag_column", cfg.tag_column))
                           if not -len(cols) <= c < len(cols))
            bad = ("misaligned_tags", i, f"{len(cols)} column(s): no {missing}")
            continue
        tokens.append(tok)
        tags.append(tag)


def read_file(path: Path, rel: str, cfg: TaskConfig) -> Iterator[Record | Drop]:
    if not path.is_file():
        raise TaskError(f"task {cfg.name}: file {path} does not exist")
    fmt = detect_format(path, cfg)
    if fmt == "conll":
        if cfg.kind != "tagging":
            raise TaskError(f"task {cfg.name}: {path} is a CoNLL file, but the task kind is {cfg.kind}")
        return read_conll(path, rel, cfg)
    if fmt in ("csv", "tsv"):
        if cfg.kind == "tagging":
            raise TaskError(f"task {cfg.name}: tagging reads CoNLL or JSON Lines files, not {fmt} ({path})")
        return read_delimited(path, rel, cfg, "," if fmt == "csv" else "\t")
    return read_jsonl(path, rel, cfg)


__all__ = ["Record", "Drop", "TaskError", "read_file", "read_conll", "read_jsonl", "read_delimited", "detect_format",
           "open_text", "json_array"]
