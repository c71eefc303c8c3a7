"""Task file readers: CSV / TSV, JSON Lines and CoNLL column files, to raw records or counted drops.

A reader yields ``Record`` (the fields it found, with the file and line it came from) or ``Drop`` (a
reason, the file and line, a detail). Checking labels against a label list happens later
(``pipeline.tasks.load``); readers only refuse what cannot become a record at all.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

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
    for suffix, fmt in ((".csv", "csv"), (".tsv", "tsv"), (".jsonl", "jsonl"), (".json", "jsonl")):
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


def read_delimited(path: Path, rel: str, cfg: TaskConfig, delimiter: str) -> Iterator[Record | Drop]:
    pair = cfg.kind == "pair_classification"
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        # QUOTE_NONE for TSV: GLUE-style TSVs hold bare quotes inside fields.
        reader = csv.reader(f, delimiter=delimiter, quoting=csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL)
        header = next(reader, None) if cfg.header else None
        cols = {"text": _column(cfg.text_field, header, path, "text_field"),
                "label": _column(cfg.label_field, header, path, "label_field")}
        if pair:
            cols["text_pair"] = _column(cfg.text_pair_field, header, path, "text_pair_field")
        for row in reader:
            origin = f"{rel}:{reader.line_num}"
            if not row or all(not c.strip() for c in row):
                continue
            need = max(cols.values())
            if len(row) <= need:
                yield Drop("missing_field", origin, f"{len(row)} column(s), need column {need}")
                continue
            yield Record(origin, text=row[cols["text"]], label=row[cols["label"]],
                         text_pair=row[cols["text_pair"]] if pair else None)


def read_jsonl(path: Path, rel: str, cfg: TaskConfig) -> Iterator[Record | Drop]:
    with open(path, encoding="utf-8", errors="replace") as f:
        for i, line in enumerate(f, 1):
            origin = f"{rel}:{i}"
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                yield Drop("bad_json", origin, str(e))
                continue
            if not isinstance(obj, dict):
                yield Drop("bad_json", origin, f"expected an object, got {type(obj).__name__}")
                continue
            if cfg.kind == "tagging":
                tokens, tags = obj.get(cfg.text_field), obj.get(cfg.label_field)
                if not isinstance(tokens, list) or not isinstance(tags, list):
                    yield Drop("missing_field", origin, f"{cfg.text_field!r} and {cfg.label_field!r} must be lists")
                    continue
                yield Record(origin, tokens=[str(t) for t in tokens], tags=[str(t) for t in tags])
                continue
            label = obj.get(cfg.label_field)
            yield Record(origin, text=_str(obj.get(cfg.text_field)), label=_str(label),
                         text_pair=_str(obj.get(cfg.text_pair_field)) if cfg.kind == "pair_classification" else None)


def _str(v) -> str | None:
    return None if v is None else str(v)


def read_conll(path: Path, rel: str, cfg: TaskConfig) -> Iterator[Record | Drop]:
    """Sentences of a column file: blank lines and ``-DOCSTART-`` lines end a sentence."""
    tokens: list[str] = []
    tags: list[str] = []
    start, bad = 0, ""
    with open(path, encoding="utf-8", errors="replace") as f:
        for i, line in enumerate([*f, ""], 1):  # a final "" closes the last sentence
            cols = line.split()
            if not cols or cols[0] == "-DOCSTART-":
                if bad:
                    yield Drop("misaligned_tags", f"{rel}:{bad}", "a line lacks the token or tag column")
                elif tokens:
                    yield Record(f"{rel}:{start}", tokens=tokens, tags=tags)
                tokens, tags, bad = [], [], ""
                continue
            if not tokens and not bad:
                start = i
            try:
                if len(cols) < 2:  # a single column cannot be both the token and the tag
                    raise IndexError
                tok, tag = cols[cfg.token_column], cols[cfg.tag_column]
            except IndexError:
                bad = bad or str(i)
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


__all__ = ["Record", "Drop", "TaskError", "read_file", "read_conll", "read_jsonl", "read_delimited", "detect_format"]
