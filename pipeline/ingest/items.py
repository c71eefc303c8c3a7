"""What the ingest readers yield (``Doc``, ``Drop``), the error that stops a run, and their shared decoding."""
from __future__ import annotations

import re
from dataclasses import dataclass

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
    rows: int = 1  # what it counts as: a whole file whose rows are known (a Parquet file) counts its rows


Item = Doc | Drop
SURROGATE = re.compile("[\ud800-\udfff]")  # a lone surrogate: never UTF-8 text (tasks.readers too)


# Byte-order marks that name another codec than UTF-8: spreadsheets save "Unicode text" as UTF-16. UTF-32's
# little-endian mark starts with UTF-16's, so it is looked for first.
BOMS = ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe", "utf-16"),
        (b"\xfe\xff", "utf-16"))


def text_encoding(head: bytes) -> str:
    """The codec of a file whose first bytes are ``head``: UTF-32 or UTF-16 when they start with that codec's
    byte-order mark (which the codec reads and drops), else UTF-8 with a UTF-8 mark dropped."""
    return next((enc for bom, enc in BOMS if head.startswith(bom)), "utf-8-sig")


def looks_utf16(data: bytes) -> bool:
    """UTF-16 without its byte-order mark, from a file's first bytes: a quarter or more of them NUL (valid UTF-8
    that no text holds: every other byte of ASCII in UTF-16 is NUL)."""
    head = data[:4096]
    return len(head) >= 8 and head.count(0) * 4 >= len(head) and text_encoding(head[:4]) == "utf-8-sig"


def decode(data: bytes, src: SourceConfig, where: str) -> str | Drop:
    if looks_utf16(data):
        return Drop("undecodable_bytes", where, "NUL bytes throughout: UTF-16 without its byte-order mark? Convert it "
                    "to UTF-8 (e.g. iconv -f UTF-16LE, or UTF-16BE, -t UTF-8)")
    encoding = text_encoding(data[:4])
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        if src.encoding_errors == "replace":
            return data.decode(encoding, errors="replace")
        bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0  # utf-8-sig counts from after it
        name = "UTF-8" if encoding == "utf-8-sig" else encoding.upper()
        return Drop("undecodable_bytes", where, f"invalid {name} at byte {e.start + bom}")


__all__ = ["IngestError", "Doc", "Drop", "Item", "SURROGATE", "decode", "text_encoding", "looks_utf16"]
