"""Real text in two scripts passes the default filters (skipped where ../shared/datasets is absent)."""
from __future__ import annotations

import json
from collections import Counter

from helpers import datasets_or_skip

from pipeline.clean import CleanConfig
from pipeline.clean.stage import drop_reasons


def _chunks(parts: list[str], size: int = 2500) -> list[str]:
    """Consecutive parts joined by blank lines into documents of about ``size`` characters."""
    docs, current = [], []
    for part in parts:
        current.append(part)
        if sum(map(len, current)) >= size:
            docs.append("\n\n".join(current))
            current = []
    return docs + (["\n\n".join(current)] if current else [])


def test_tinyshakespeare_passes():
    text = datasets_or_skip("tinyshakespeare", "input.txt").read_text(encoding="utf-8")
    docs = _chunks(text.split("\n\n"))  # speeches, grouped into ~2.5 KB scenes
    reasons = drop_reasons(docs, ["shakespeare"] * len(docs), CleanConfig())
    kept = reasons.count(None) / len(docs)
    assert len(docs) > 400 and kept >= 0.95, Counter(reasons).most_common(4)


def test_chinese_poetry_passes():
    root = datasets_or_skip("chinese_poetry")
    poems = []
    for path in sorted(root.glob("*/*.json")):
        for item in json.loads(path.read_text(encoding="utf-8")):
            if isinstance(item, dict) and isinstance(item.get("paragraphs"), list):
                title = item.get("title") or item.get("rhythmic") or ""
                poems.append("\n".join([title, item.get("author", ""), "", *item["paragraphs"]]))
    poems = poems[::4]  # every 4th poem of every collection keeps the test quick
    reasons = drop_reasons(poems, ["poetry"] * len(poems), CleanConfig())
    kept = reasons.count(None) / len(poems)
    assert len(poems) > 5000 and kept >= 0.95, Counter(reasons).most_common(4)
    # Long enough to be judged by every statistical rule, and still kept.
    long_ones = [r for p, r in zip(poems, reasons) if len(p) >= 100]
    assert len(long_ones) > 1000 and long_ones.count(None) / len(long_ones) >= 0.95
