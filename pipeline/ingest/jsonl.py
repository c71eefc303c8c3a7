"""JSON Lines (plain, .gz, .zst) and JSON-array files: a document per line, or per array element."""
from __future__ import annotations

import gzip
import json
import math
import re
from pathlib import Path
from typing import Any, Iterator

from pipeline.ingest.config import SourceConfig
from pipeline.ingest.items import SURROGATE, Doc, Drop, Item, decode, text_encoding


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
    """One document per line (JSON Lines). A ``.json`` file holding one JSON array is read as a document per
    element (``<file>:[<index>]``), and one holding a single object spread over several lines (pretty-printed)
    as one document, not line by line (each of its lines would be a drop)."""
    lines = _open_lines(path)
    first = next(lines, b"")
    while first and not first.strip():
        first = next(lines, b"")
    if not first:
        yield Drop("empty_file", rel)
        return
    if (encoding := text_encoding(first[:4])) != "utf-8-sig":  # its lines are not split at b"\n" bytes
        lines.close()
        yield Drop("undecodable_bytes", rel, f"a {encoding.upper()} byte-order mark: JSON is UTF-8 (RFC 8259); "
                   "save the file as UTF-8")
        return
    head = first.lstrip().removeprefix(b"\xef\xbb\xbf").lstrip()
    if ".json" in path.name.lower() and ".jsonl" not in path.name.lower():
        if head.startswith(b"["):
            yield from _json_array(first + b"".join(lines), rel, src)
            return
        if head.startswith(b"{") and not _whole_value(head):
            whole = _json_object(first + b"".join(lines), src, rel)
            if whole is not None:
                yield from whole
                return
    lines.close()  # read again from the start, line by line
    for lineno, raw in enumerate(_open_lines(path), 1):
        if raw.strip():
            yield from _json_doc(raw, f"{rel}:{lineno}", rel, src, line=lineno)


def _load_json(data: bytes, src: SourceConfig, where: str, whole_file: bool = False) -> tuple[Any, str] | Drop:
    """(the value, its text) of JSON bytes, or a Drop: bytes that are not UTF-8, or JSON that does not parse
    (in a whole file, at its line)."""
    text = decode(data, src, where)
    if isinstance(text, Drop):
        return text
    try:
        return json.loads(text), text
    except json.JSONDecodeError as e:
        if whole_file:
            return Drop("malformed_json", f"{where}:{e.lineno}", f"{e.msg} (the file is one JSON array: nothing read)")
        return Drop("malformed_json", where, str(e))


def _whole_value(line: bytes) -> bool:
    """Whether a line is a whole JSON value (a JSON Lines record), not the start of a longer one."""
    try:
        json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return False
    return True


def _json_object(data: bytes, src: SourceConfig, rel: str) -> list[Item] | None:
    """A file that is one JSON object: its document (or one drop naming what it lacks); None when the bytes
    are not one JSON object, to be read line by line instead (JSON Lines whose first line is malformed)."""
    loaded = _load_json(data, src, rel)
    if isinstance(loaded, Drop) or not isinstance(loaded[0], dict):
        return None
    obj, text = loaded
    if src.text_field not in obj:
        return [Drop("missing_field", rel, f"the file is one JSON object with no field {src.text_field!r} (its keys: "
                     f"{', '.join(map(str, list(obj)[:8]))}); a .json file is read as one object, an array of "
                     "objects, or JSON Lines")]
    return list(_json_doc(obj, rel, rel, src, escapes=_MAYBE_SURROGATE.search(text) is not None))


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
        keys = (f" (its keys: {', '.join(list(obj)[:12])})" if isinstance(obj, dict)
                else f" (a JSON {type(obj).__name__})")
        yield Drop("missing_field", where, f"no field {src.text_field!r}{keys}")
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


__all__ = ["read_jsonl"]
