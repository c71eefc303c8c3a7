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


Item = Doc | Drop
SURROGATE = re.compile("[\ud800-\udfff]")  # a lone surrogate: never UTF-8 text (tasks.readers too)


def decode(data: bytes, src: SourceConfig, where: str) -> str | Drop:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        if src.encoding_errors == "replace":
            return data.decode("utf-8-sig", errors="replace")
        bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0  # utf-8-sig counts from after it
        return Drop("undecodable_bytes", where, f"invalid UTF-8 at byte {e.start + bom}")


__all__ = ["IngestError", "Doc", "Drop", "Item", "SURROGATE", "decode"]
