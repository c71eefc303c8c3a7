"""Real data: CoNLL-2003 test sentences planted into TinyStories text are found, and nothing else is."""
from __future__ import annotations

import json

import pyarrow.parquet as pq

from helpers import datasets_or_skip
from pipeline import documents
from pipeline.decontaminate import DecontaminateConfig, run
from pipeline.stage import StageContext
from pipeline.store import Manifest
from pipeline.tasks import TaskConfig, TasksConfig


def test_planted_conll_test_sentences_in_tinystories(tmp_path):
    conll = datasets_or_skip("conll2003")
    stories = datasets_or_skip("tinystories_slice", "tinystories_val_head.txt").read_text().split("\n\n")
    docs = [s for s in (x.strip() for x in stories) if s][:600]
    sentences = [[ln.split()[0] for ln in block.splitlines()]
                 for block in (conll / "test.txt").read_text().split("\n\n") if block.strip()]
    long = [" ".join(ws) for ws in sentences if len(ws) >= 20][:5]
    planted = {7: long[0], 150: long[1].lower(), 333: long[2].replace(" ,", ";"), 599: long[3]}
    for i, s in planted.items():
        docs[i] = f"{docs[i]} {s} {docs[i][:40]}"
    rows = [{"doc_id": f"story{i}", "text": t, "source": "tinystories", "meta": "{}"} for i, t in enumerate(docs)]
    for k in range(0, len(rows), 200):
        path = tmp_path / "up" / documents.shard_name(k // 200)
        path.parent.mkdir(parents=True, exist_ok=True)
        documents.write_table(documents.docs_table(rows[k:k + 200]), path)
    tasks = TasksConfig([TaskConfig(name="conll", kind="tagging", source="files", train=str(conll / "train.txt"),
                                    validation=str(conll / "dev.txt"), test=str(conll / "test.txt"))])
    ctx = StageContext(name="decontaminate", key="k", out=tmp_path / "out", root=tmp_path, extra={"tasks": tasks},
                       inputs={"docs": Manifest("dedup", "u", "1", {}, {}, {}, path=tmp_path / "up")})
    stats = run(DecontaminateConfig(), ctx)
    out = [r for p in documents.doc_shards(ctx.out) for r in pq.read_table(p).to_pylist()]
    flagged = {int(r["doc_id"][5:]): json.loads(r["contamination"]) for r in out if r["drop_reason"]}
    assert sorted(flagged) == sorted(planted)
    assert all(f["matched"] == ["conll:test"] and f["unit"] == "word" for f in flagged.values())
    assert stats["docs_in"] == 600 and stats["docs_removed"] == 4
    assert stats["eval_texts"] == 3250 + 3453  # dev + test sentences
