"""The decontaminate stage end to end on planted overlaps with real task files."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import documents
from pipeline.decontaminate import DecontaminateConfig, run
from pipeline.decontaminate.index import GramSpec, build_index
from pipeline.decontaminate.shards import mark
from pipeline.stage import InjectedFailure, StageContext
from pipeline.store import Manifest
from pipeline.tasks import TaskConfig, TasksConfig

TEST_EN = ("The committee approved the new budget after a long debate that lasted well into the night, "
           "and the chair thanked every member for their patience.")
VAL_EN = "Heavy rain flooded the lower streets of the old town, so the market moved to the hill above the river."
TEST_ZH = "床前明月光疑是地上霜举头望明月低头思故乡" * 3  # 60 Han characters
TRAIN = "A plain training sentence about nothing in particular that nobody will test on."


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path.name


def tasks(root: Path) -> TasksConfig:
    d = root / "news"
    write_jsonl(d / "train.jsonl", [{"text": TRAIN, "label": "a"}, {"text": "another one", "label": "b"}])
    write_jsonl(d / "validation.jsonl", [{"text": VAL_EN, "label": "a"}])
    write_jsonl(d / "test.jsonl", [{"text": TEST_EN, "label": "a"}, {"text": TEST_ZH, "label": "b"},
                                   {"text": "too short to protect", "label": "b"}])
    return TasksConfig([TaskConfig(name="news", kind="classification", source="files", train="news/train.jsonl",
                                   validation="news/validation.jsonl", test="news/test.jsonl")])


DOCS = [
    ("d0", f"Minutes of the meeting. {TEST_EN} The meeting closed at ten."),            # verbatim
    ("d1", "THE committee approved -- the new budget, after a long debate; that lasted well (into) the night!"),
    ("d2", " ".join(TEST_EN.split()[:12]) + " and then something else happened entirely."),  # 12 words: kept
    ("d3", TRAIN + " Train text may appear in pretraining."),                              # train split: kept
    ("d4", f"Weather report: {VAL_EN.lower()}"),                                        # validation
    ("d5", "唐诗选：" + "，".join(TEST_ZH[i:i + 5] for i in range(0, 60, 5)) + "。"),       # CJK, re-punctuated
    ("d6", "短文：" + TEST_ZH[:49]),                                                      # 49 characters: kept
    ("d7", "too short to protect is fine to keep in a document"),
]


def docs_manifest(folder: Path, docs: list[tuple[str, str]], per_shard: int = 4, dropped: bool = True) -> Manifest:
    for i in range(0, max(len(docs), 1) if docs else 0, per_shard):
        rows = [{"doc_id": d, "text": t, "source": "s", "meta": "{}"} for d, t in docs[i:i + per_shard]]
        reasons = [None] * len(rows)
        if dropped:  # an upstream-dropped row must not reach the output
            rows.append({"doc_id": f"dup{i}", "text": TEST_EN, "source": "s", "meta": "{}"})
            reasons.append("near_duplicate")
        table = documents.docs_table(rows).append_column("drop_reason", pa.array(reasons, pa.string()))
        path = folder / documents.shard_name(i // per_shard)
        path.parent.mkdir(parents=True, exist_ok=True)
        documents.write_table(table, path)
    (folder / documents.DOCS_DIR).mkdir(parents=True, exist_ok=True)
    return Manifest(stage="dedup", key="up", version="1", config={}, inputs={}, files={}, path=folder)


def context(tmp_path: Path, docs: list[tuple[str, str]], name: str = "out", **kw) -> StageContext:
    return StageContext(name="decontaminate", key="k", out=tmp_path / name, root=tmp_path,
                        inputs={"docs": docs_manifest(tmp_path / "up", docs)}, extra={"tasks": tasks(tmp_path)}, **kw)


def read_out(out: Path) -> list[dict]:
    return [r for p in documents.doc_shards(out) for r in pq.read_table(p).to_pylist()]


def test_planted_overlaps_are_removed_and_the_rest_kept(tmp_path):
    ctx = context(tmp_path, DOCS)
    stats = run(DecontaminateConfig(), ctx)
    rows = read_out(ctx.out)
    assert [r["doc_id"] for r in rows] == [d for d, _ in DOCS]  # kept input rows, in order
    removed = {r["doc_id"]: json.loads(r["contamination"]) for r in rows if r["drop_reason"] == "contaminated"}
    assert sorted(removed) == ["d0", "d1", "d4", "d5"]
    assert all(r["contamination"] is None for r in rows if r["drop_reason"] is None)
    assert removed["d0"]["matched"] == ["news:test"] and removed["d0"]["windows"] == 13
    assert removed["d1"]["ngram"] == "the committee approved the new budget after a long debate that lasted well"
    assert removed["d4"]["matched"] == ["news:validation"] and removed["d4"]["unit"] == "word"
    assert removed["d5"]["unit"] == "char" and removed["d5"]["ngram"] == TEST_ZH[:50]
    assert stats["docs_in"] == 8 and stats["docs_removed"] == 4 and stats["docs_kept"] == 4
    assert stats["removed_by_task"] == {"news": 4}
    assert stats["removed_by_source"] == {"news:test": 3, "news:validation": 1}
    assert stats["removed_by_evidence"] == {"char": 1, "word": 3}
    # 25-word test text: 13 word 13-grams; 60-char poem: 11 char 50-grams; 20-word validation text: 8.
    assert stats["eval_ngrams"] == 13 + 11 + 8 and stats["eval_texts"] == 4 and stats["eval_texts_unprotected"] == 1
    samples = json.loads((ctx.reports / "contaminated_samples.json").read_text())
    assert [s["doc_id"] for s in samples] == ["d0", "d1", "d4", "d5"]
    assert samples[0]["ngram"].startswith("the committee approved") and samples[0]["matched"] == ["news:test"]


def test_output_is_identical_across_workers_and_after_a_crash(tmp_path):
    a = context(tmp_path, DOCS, "a")
    run(DecontaminateConfig(), a)
    b = context(tmp_path, DOCS, "b", workers=2)
    run(DecontaminateConfig(), b)
    crash = context(tmp_path, DOCS, "c", fail_after_shards=1)
    with pytest.raises(InjectedFailure):
        run(DecontaminateConfig(), crash)
    assert len(documents.doc_shards(crash.out)) == 1
    resumed = context(tmp_path, DOCS, "c")
    stats = run(DecontaminateConfig(), resumed)
    assert stats["docs_removed"] == 4
    for out in (b.out, resumed.out):
        assert [p.read_bytes() for p in documents.doc_shards(out)] == \
               [p.read_bytes() for p in documents.doc_shards(a.out)]
    assert len(documents.doc_shards(a.out)) == 2


def test_longer_ngram_setting_keeps_the_short_copy(tmp_path):
    stats = run(DecontaminateConfig(word_ngram=17), context(tmp_path, DOCS))
    assert stats["docs_removed"] == 3  # d1 shares 16 words only; d0, d4 (20 words) and d5 (chars) still match


def test_empty_input_gives_one_empty_shard(tmp_path):
    ctx = context(tmp_path, [])
    stats = run(DecontaminateConfig(), ctx)
    assert stats["docs_in"] == 0 and stats["docs_removed"] == 0 and stats["removed_fraction"] == 0.0
    (shard,) = documents.doc_shards(ctx.out)
    t = pq.read_table(shard)
    assert t.num_rows == 0 and t.column_names[-2:] == ["drop_reason", "contamination"]


def test_missing_tasks_section_is_a_clear_error(tmp_path):
    ctx = StageContext(name="decontaminate", key="k", out=tmp_path / "o",
                       inputs={"docs": docs_manifest(tmp_path / "up", DOCS)})
    with pytest.raises(KeyError, match="reads the 'tasks' config section"):
        run(DecontaminateConfig(), ctx)


def test_held_out_units_drop_their_documents_by_meta():
    spec = GramSpec(n={"word": 13, "char": 50}, min_len={"word": 8, "char": 20})
    index = build_index([("area:test", ["Close the loop."])], spec, {"module/asyncio.tasks": ["area:test"]})
    texts = ["asyncio.tasks\n\nClose the loop.", "json page", "a topic"]
    metas = [json.dumps({"kind": "module", "module": "asyncio.tasks"}), json.dumps({"module": "json"}),
             json.dumps({"kind": "topic", "topic": "if"})]
    marks = mark(texts, index, metas)
    assert marks[1:] == [None, None]
    assert json.loads(marks[0]) == {"matched": ["area:test"], "unit": None, "n": 0, "windows": 0, "ngram": None,
                                    "held_out_unit": "module/asyncio.tasks"}
    assert mark(texts, build_index([("area:test", [])], spec), metas) == [None] * 3
