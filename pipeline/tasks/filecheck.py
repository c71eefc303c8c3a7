"""What a task file's first bytes tell, checked when a run is planned (before ingest, clean and dedup run): it is
not empty, its format holds the task's kind, a CSV / TSV header names the configured columns, JSON objects hold
the configured keys, a CoNLL file's lines hold the token and tag columns. A failure is a ConfigError naming the key.
"""
from __future__ import annotations

import json
from pathlib import Path

from pipeline.configtypes import ConfigError
from pipeline.ingest.readers import csv_records
from pipeline.tasks.config import TaskConfig
from pipeline.tasks.readers import TaskError, conll_width, column_index, detect_format, json_array, open_text

HEAD_BYTES = 1 << 16  # what the planning checks read of a task file


def _head(path: Path, newline: str | None = None) -> str:
    """A task file's first ``HEAD_BYTES`` characters (``newline=""``: line ends kept, as the csv module wants)."""
    with open_text(path, newline=newline) as f:
        return f.read(HEAD_BYTES)


def _head_lines(path: Path, n: int = 20) -> list[str]:
    """The first ``n`` non-blank whole lines of a file (within its first 64 KiB)."""
    chunk = _head(path)
    lines = chunk.split("\n")
    if len(chunk) == HEAD_BYTES:
        lines = lines[:-1]  # it may be cut
    return [ln for ln in lines if ln.strip()][:n]


def _check_jsonl(path: Path, cfg: TaskConfig, where: str, fields: dict[str, str]) -> None:
    """The first lines (or a JSON array's first elements) must hold JSON objects, and some of them each
    configured key."""
    try:
        items = json_array(path)
    except TaskError as e:
        raise ConfigError(f"{where}: {e}") from None
    if items is not None:
        objs = [o for o in items[:20] if isinstance(o, dict)]
        if not items:
            raise ConfigError(f"{where}: {path.name!r} is empty (an empty JSON array)")
        if not objs:
            raise ConfigError(f"{where}: {path.name!r} holds a JSON array with no object among its first "
                              f"{min(len(items), 20)} element(s); a task reads an array of objects, or JSON Lines")
    else:
        lines = _head_lines(path)
        objs = []
        for line in lines:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                objs.append(obj)
        if lines and not objs:
            raise ConfigError(f"{where}.format: {path.name!r} reads as jsonl (format {cfg.format!r}), but none of "
                              f"its first {len(lines)} line(s) is a JSON object; allowed: csv, tsv, jsonl, conll")
    keys = ", ".join(sorted({str(k) for o in objs for k in o}))
    for name, value in fields.items():
        if objs and not any(value in o for o in objs):
            raise ConfigError(f"{where}.{name}: no key {value!r} in the first {len(objs)} record(s) of "
                              f"{path.name!r} (their keys: {keys})")


def _check_conll(path: Path, cfg: TaskConfig, where: str) -> None:
    """The token and tag columns must exist on most of the first lines."""
    width = conll_width(_head_lines(path, 200))
    if not width:
        return
    for name, col in (("token_column", cfg.token_column), ("tag_column", cfg.tag_column)):
        if column_index(col) >= width:
            raise ConfigError(f"{where}.{name}: got {col}, but the lines of {path.name!r} have {width} column(s)")


_CHECKED: set[tuple] = set()  # files that passed, by what stat says of them: planning asks once per stage reading them


def check_file(path: Path, cfg: TaskConfig, key: str) -> None:
    """At planning, what a task file's first bytes tell: it is not empty, its format holds the task's kind, a CSV /
    TSV header names the configured columns and its first record holds the indexed ones, the first lines of a
    JSON Lines file are objects holding the configured keys, a CoNLL file's lines hold the token and tag columns.
    A ConfigError naming the key: found when the file was read, after ingest, clean and dedup had run, these
    cost the run so far (and came as rows dropped for a vague reason)."""
    st = path.stat()
    seen = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, key, repr(cfg))
    if seen in _CHECKED:
        return
    _check_file(path, cfg, key)
    _CHECKED.add(seen)


def _check_file(path: Path, cfg: TaskConfig, key: str) -> None:
    where = key.rsplit(".", 1)[0]
    if path.stat().st_size == 0 or not _head(path).strip():  # (a byte-order mark and blank lines: empty too)
        raise ConfigError(f"{key}: {path.name!r} is empty")
    try:
        fmt = detect_format(path, cfg)
    except TaskError:
        raise ConfigError(f"{where}.format: got 'auto', and {path.name!r} has no suffix that tells its format; "
                          "allowed: csv, tsv, jsonl, conll") from None
    if (fmt == "conll") != (cfg.kind == "tagging") and not (fmt == "jsonl" and cfg.kind == "tagging"):
        allowed = "conll, jsonl" if cfg.kind == "tagging" else "csv, tsv, jsonl"
        raise ConfigError(f"{where}.format: {path.name!r} reads as {fmt}, allowed for kind {cfg.kind!r}: {allowed}")
    fields = {"text_field": cfg.text_field, "label_field": cfg.label_field}
    if cfg.kind == "pair_classification":
        fields["text_pair_field"] = cfg.text_pair_field
    if fmt == "jsonl":
        return _check_jsonl(path, cfg, where, fields)
    if fmt == "conll":
        return _check_conll(path, cfg, where)
    # the first record, as read_delimited reads it (blank lines skipped, a quoted newline kept)
    first = next(csv_records(_head(path, newline=""), fmt, path.name), None)
    record = first[1] if first is not None and isinstance(first[1], list) else None
    header = record if cfg.header else None
    for name, value in fields.items():
        if header is not None and value in header:
            continue
        if not value.lstrip("-").isdigit():
            shown = (f"its header: {', '.join(header)}" if header is not None else
                     "its first record is no header row" if cfg.header else "header: false, so a column index")
            if header is not None and any("\x00" in h for h in header):  # (shown escaped, not as raw NULs)
                shown = (f"its header holds NUL characters, {', '.join(header)!r}: a UTF-16 file without its "
                         "byte-order mark?")
            raise ConfigError(f"{where}.{name}: no column {value!r} in {path.name!r} ({shown})")
        if record is not None and column_index(int(value)) >= len(record):
            raise ConfigError(f"{where}.{name}: got column {value}, but the first record of {path.name!r} has "
                              f"{len(record)} field(s)")


__all__ = ["check_file"]
