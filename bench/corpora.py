"""Benchmark documents from ../shared/datasets (``$LMFORGE_DATASETS`` overrides the folder).

Imported by the bench scripts as ``bench.corpora`` (they put the repository root first on sys.path).
"""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGLISH = ("wikitext2_tokenized/test.txt", "wikitext2_tokenized/valid.txt", "tinystories_slice/tinystories_val_head.txt")


def datasets_dir() -> Path:
    return Path(os.environ.get("LMFORGE_DATASETS") or ROOT / ".." / "shared" / "datasets").resolve()


def english_lines() -> list[str]:
    """The non-blank lines, stripped, of WikiText-2 test + valid and the TinyStories slice."""
    d = datasets_dir()
    text = "\n".join((d / p).read_text() for p in ENGLISH)
    return [x.strip() for x in text.splitlines() if x.strip()]


def pieces(lines: list[str], target_bytes: int = 2500) -> list[str]:
    """Consecutive lines grouped into documents of at least ``target_bytes`` UTF-8 bytes (the rest dropped)."""
    docs, cur, size = [], [], 0
    for line in lines:
        cur.append(line)
        size += len(line.encode()) + 1
        if size >= target_bytes:
            docs.append("\n".join(cur))
            cur, size = [], 0
    return docs
