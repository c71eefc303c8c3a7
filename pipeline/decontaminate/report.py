"""Figures and samples of a decontaminate output, read back from its shards (so a resumed run reports the
same numbers as an uninterrupted one)."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline import documents


def summarize(out: Path, sample_docs: int, sample_chars: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(counts, samples): documents in and removed; removed per task, per ``task:split`` and per evidence
    (word or char n-gram, held-out unit); the first ``sample_docs`` contaminated documents in stream order
    with what they share."""
    docs_in = removed = 0
    by_task, by_source, by_evidence = Counter(), Counter(), Counter()
    samples: list[dict[str, Any]] = []
    for path in documents.doc_shards(out):
        marks = pq.read_table(path, columns=["contamination"]).column(0)
        docs_in += len(marks)
        hit = pc.invert(marks.is_null())
        n_hit = pc.sum(hit).as_py() or 0
        if not n_hit:
            continue
        removed += n_hit
        rows = pq.read_table(path, columns=["doc_id", "text", "contamination"]).filter(hit).to_pylist()
        for row in rows:
            info = json.loads(row["contamination"])
            by_source.update(info["matched"])
            by_task.update({s.split(":")[0] for s in info["matched"]})
            by_evidence[info["unit"] or "held_out_unit"] += 1
            if len(samples) < sample_docs:
                samples.append({"doc_id": row["doc_id"], **info, "text": row["text"][:sample_chars]})
    counts = {
        "docs_in": docs_in, "docs_removed": removed, "docs_kept": docs_in - removed,
        "removed_fraction": removed / docs_in if docs_in else 0.0,
        "removed_by_task": dict(sorted(by_task.items())),
        "removed_by_source": dict(sorted(by_source.items())),
        "removed_by_evidence": dict(sorted(by_evidence.items())),
    }
    return counts, samples
