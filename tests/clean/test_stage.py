"""The stage: outputs, stats, reports, attribute cache, determinism across workers, resume."""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from pipeline import documents
from pipeline.clean import CleanConfig, cache
from pipeline.clean.attributes import COLUMNS
from pipeline.stage import InjectedFailure

FAST = CleanConfig(plot=False)  # the histogram PNG costs seconds of matplotlib; one test checks it


def _corpus(texts) -> list[list[dict]]:
    """Three shards mixing sources, kept and dropped documents."""
    a = [texts.prose, "Too short.", texts.pydoc, "", texts.prose + "\nLorem ipsum dolor sit amet."]
    b = [texts.chinese, texts.docstring, "contact: jane@example.org, server 8.8.8.8, done here now."]
    c = [texts.code, ""]
    return [
        [{"doc_id": f"a{i}", "text": t, "source": "docs", "meta": "{}"} for i, t in enumerate(a)],
        [{"doc_id": f"b{i}", "text": t, "source": "web", "meta": json.dumps({"i": i})} for i, t in enumerate(b)],
        [{"doc_id": f"c{i}", "text": t, "source": "stdlib_source", "meta": "{}"} for i, t in enumerate(c)],
    ]


def test_outputs_stats_and_reports(tmp_path, helpers, texts):
    up = helpers.make_upstream(tmp_path / "up", _corpus(texts))
    stats = helpers.run_stage(CleanConfig(), up, tmp_path / "out", tmp_path / "work")
    rows = helpers.output_rows(tmp_path / "out")
    assert [r["doc_id"] for r in rows] == ["a0", "a1", "a2", "a3", "a4", "b0", "b1", "b2", "c0", "c1"]
    assert [documents.doc_shards(tmp_path / "out")[i].name for i in range(3)] == [
        "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    reasons = {r["doc_id"]: r["drop_reason"] for r in rows}
    assert reasons == {"a0": None, "a1": "gopher_min_words", "a2": None, "a3": "empty", "a4": "c4_lorem_ipsum",
                       "b0": None, "b1": None, "b2": None, "c0": None, "c1": "empty"}
    schema = pq.read_schema(documents.doc_shards(tmp_path / "out")[0])
    assert schema.names == ["doc_id", "text", "source", "meta", "pii_emails", "pii_ips", *COLUMNS, "drop_reason"]
    b2 = next(r for r in rows if r["doc_id"] == "b2")
    assert b2["text"] == "contact: <EMAIL>, server <IP>, done here now."
    assert (b2["pii_emails"], b2["pii_ips"], b2["meta"]) == (1, 1, '{"i": 2}')
    assert next(r for r in rows if r["doc_id"] == "b0")["script"] == "cjk"

    kept_chars = sum(r["n_chars"] for r in rows if r["drop_reason"] is None)
    assert {k: stats[k] for k in ("docs_in", "docs_kept", "docs_dropped", "chars_kept", "pii_emails", "pii_ips")} \
        == {"docs_in": 10, "docs_kept": 6, "docs_dropped": 4, "chars_kept": kept_chars, "pii_emails": 1, "pii_ips": 1}
    assert stats["chars_in"] == sum(r["n_chars"] for r in rows)
    assert stats["dropped"]["empty"] == 2 and stats["dropped"]["gopher_min_words"] == 1
    assert stats["dropped"]["c4_lorem_ipsum"] == 1 and stats["dropped"]["gopher_top_2gram"] == 0
    assert "c4_curly_bracket" not in stats["dropped"]  # disabled: not reported
    assert stats["by_source"] == {"docs": {"docs_in": 5, "docs_kept": 2}, "stdlib_source": {"docs_in": 2, "docs_kept": 1},
                                  "web": {"docs_in": 3, "docs_kept": 3}}

    reports = tmp_path / "out" / "reports"
    rules = {r["rule"]: r for r in json.loads((reports / "rules.json").read_text())}
    assert rules["gopher_min_words"]["thresholds"] == {"min_words": 5}
    assert rules["gopher_min_words"]["dropped"] == 1
    assert rules["gopher_min_words"]["sources"] == ["docs", "web"]  # not the code source
    assert rules["code_max_line_len"]["sources"] == ["stdlib_source"]
    samples = json.loads((reports / "dropped_samples.json").read_text())
    assert [s["doc_id"] for s in samples["empty"]] == ["a3", "c1"]
    assert samples["gopher_min_words"] == [{"doc_id": "a1", "source": "docs", "value": 2, "text": "Too short."}]
    assert (reports / "attributes.png").read_bytes()[:4] == b"\x89PNG"


def test_empty_inputs(tmp_path, helpers):
    no_shards = helpers.make_upstream(tmp_path / "up0", [])
    stats = helpers.run_stage(FAST, no_shards, tmp_path / "out0", tmp_path / "work")
    assert (stats["docs_in"], stats["docs_kept"], stats["dropped"]) == (0, 0, {})
    assert documents.doc_shards(tmp_path / "out0") == []

    empty_shard = helpers.make_upstream(tmp_path / "up1", [[]])
    stats = helpers.run_stage(FAST, empty_shard, tmp_path / "out1", tmp_path / "work")
    assert stats["docs_in"] == 0
    assert pq.read_table(documents.doc_shards(tmp_path / "out1")[0]).num_rows == 0


def test_single_document_and_upstream_drops(tmp_path, helpers, texts):
    up = helpers.make_upstream(tmp_path / "up", [helpers.rows_of([texts.prose, "dropped upstream"])],
                               drop_reasons=[[None, "ingest_reason"]])
    stats = helpers.run_stage(FAST, up, tmp_path / "out", tmp_path / "work")
    rows = helpers.output_rows(tmp_path / "out")
    assert [(r["doc_id"], r["drop_reason"]) for r in rows] == [("d0", None)]  # ingest's drop stays dropped
    assert (stats["docs_in"], stats["docs_kept"]) == (1, 1)


def test_threshold_change_reuses_cached_attributes(tmp_path, helpers, texts, monkeypatch):
    up = helpers.make_upstream(tmp_path / "up", _corpus(texts))
    first = helpers.run_stage(FAST, up, tmp_path / "out1", tmp_path / "work")
    assert (first["attr_shards_computed"], first["attr_shards_reused"]) == (3, 0)
    cached = sorted((tmp_path / "work" / "_cache" / "clean_attrs").glob("*/*.parquet"))
    assert len(cached) == 3
    before = [(p, p.stat().st_mtime_ns, p.stat().st_ino) for p in cached]

    calls = []
    monkeypatch.setattr(cache, "compute", lambda text: calls.append(text) or pytest.fail("recomputed"))
    stricter = CleanConfig(min_words=30, plot=False)
    second = helpers.run_stage(stricter, up, tmp_path / "out2", tmp_path / "work")
    assert calls == []
    assert (second["attr_shards_computed"], second["attr_shards_reused"]) == (0, 3)
    assert [(p, p.stat().st_mtime_ns, p.stat().st_ino) for p in cached] == before
    # The docstring (9 words) and the short PII line (8 words) now fail min_words.
    assert second["dropped"]["gopher_min_words"] == first["dropped"]["gopher_min_words"] + 2
    assert second["docs_kept"] == first["docs_kept"] - 2
    rows1, rows2 = helpers.output_rows(tmp_path / "out1"), helpers.output_rows(tmp_path / "out2")
    assert [r["n_words"] for r in rows1] == [r["n_words"] for r in rows2]

    # A normalization switch keys another cache entry: attributes are computed again.
    monkeypatch.undo()
    third = helpers.run_stage(CleanConfig(mask_emails=False, plot=False), up, tmp_path / "out3", tmp_path / "work")
    assert third["attr_shards_computed"] == 3
    assert len(list((tmp_path / "work" / "_cache" / "clean_attrs").iterdir())) == 2


def test_a_changed_shard_recomputes_only_its_own_attributes(tmp_path, helpers, texts):
    """The cache was keyed by all upstream shards together: one changed file recomputed every shard."""
    corpus = _corpus(texts)
    helpers.run_stage(FAST, helpers.make_upstream(tmp_path / "up1", corpus), tmp_path / "out1", tmp_path / "work")
    corpus[1] = corpus[1] + [{"doc_id": "b9", "text": texts.prose, "source": "web", "meta": "{}"}]
    second = helpers.run_stage(FAST, helpers.make_upstream(tmp_path / "up2", corpus), tmp_path / "out2",
                               tmp_path / "work")
    assert (second["attr_shards_computed"], second["attr_shards_reused"]) == (1, 2)
    fresh = helpers.run_stage(FAST, helpers.make_upstream(tmp_path / "up3", corpus), tmp_path / "out3",
                              tmp_path / "work3")
    assert helpers.published_files(tmp_path / "out2") == helpers.published_files(tmp_path / "out3")
    assert fresh["attr_shards_computed"] == 3


def test_output_is_independent_of_workers(tmp_path, helpers, texts):
    up = helpers.make_upstream(tmp_path / "up", _corpus(texts))
    helpers.run_stage(FAST, up, tmp_path / "w1", tmp_path / "work1", workers=1)
    helpers.run_stage(FAST, up, tmp_path / "w2", tmp_path / "work2", workers=2)
    one, two = helpers.published_files(tmp_path / "w1"), helpers.published_files(tmp_path / "w2")
    assert sorted(one) == sorted(two)
    assert one == two


def test_resume_after_failure_is_byte_identical(tmp_path, helpers, texts):
    up = helpers.make_upstream(tmp_path / "up", _corpus(texts))
    full_stats = helpers.run_stage(FAST, up, tmp_path / "full", tmp_path / "work_full")
    with pytest.raises(InjectedFailure):
        helpers.run_stage(FAST, up, tmp_path / "resumed", tmp_path / "work", fail_after_shards=1)
    assert [p.name for p in documents.doc_shards(tmp_path / "resumed")] == ["part-00000.parquet"]
    stats = helpers.run_stage(FAST, up, tmp_path / "resumed", tmp_path / "work")
    assert stats["attr_shards_computed"] == 2  # only the two shards not written before the failure
    resumed = {k: v for k, v in helpers.published_files(tmp_path / "resumed").items()}
    assert resumed == helpers.published_files(tmp_path / "full")
    strip = ("attr_shards_computed", "attr_shards_reused")
    assert {k: v for k, v in stats.items() if k not in strip} == {k: v for k, v in full_stats.items() if k not in strip}
