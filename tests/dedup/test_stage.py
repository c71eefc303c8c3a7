"""The dedup stage end to end: drops, clusters, determinism, resumption, edge cases, reports."""
from __future__ import annotations

import json

import pyarrow as pa
import pytest

from pipeline.configtypes import ConfigError, build
from pipeline.dedup import DedupConfig
from pipeline.stage import InjectedFailure

CFG = DedupConfig()


@pytest.fixture
def planted(corpus, helpers):
    """46 docs: 30 unrelated, 4 near-duplicate groups of 3, 3 exact copies and a hard negative."""
    unrelated = [corpus.doc() for _ in range(30)]
    groups = [[corpus.doc()] for _ in range(4)]
    for g in groups:
        g += [corpus.edit(g[0], 1), corpus.edit(g[0], 2)]
    hard_negative = corpus.edit(unrelated[5], 30)
    stream = (unrelated[:15] + [g[0] for g in groups] + [groups[0][1], unrelated[3], groups[1][1]]
              + unrelated[15:] + [g[2] for g in groups] + [groups[2][1], groups[3][1], hard_negative,
                                                         unrelated[3], unrelated[20]])
    return stream, groups, unrelated, hard_negative


def _upstream(helpers, tmp_path, stream, per_shard=20):
    rows = helpers.rows_of(stream)
    return helpers.make_upstream(tmp_path / "up", [rows[i:i + per_shard] for i in range(0, len(rows), per_shard)])


def test_planted_groups_collapse_and_unrelated_survive(planted, helpers, tmp_path):
    stream, groups, unrelated, hard_negative = planted
    for g in groups:  # the premise: every member is a near-duplicate of every other (reference Jaccard)
        assert min(helpers.word_5gram_jaccard(a, b) for a in g for b in g) >= 0.8
    assert helpers.word_5gram_jaccard(hard_negative, unrelated[5]) < 0.5
    stats = helpers.run_stage(CFG, _upstream(helpers, tmp_path, stream), tmp_path / "out")
    rows = helpers.output_rows(tmp_path / "out")
    assert [r["text"] for r in rows] == stream  # every kept-by-clean document, in stream order
    by_text = {}
    for pos, r in enumerate(rows):
        by_text.setdefault(r["text"], []).append((pos, r))
    for g in groups:
        members = [pr for t in g for pr in by_text[t]]
        first = min(p for p, _ in members)
        assert sorted((r["drop_reason"] is None) for _, r in members) == [False, False, True]
        assert all(r["cluster_id"] == first and r["cluster_size"] == 3 for _, r in members)
        assert next(r for p, r in members if p == first)["drop_reason"] is None
        assert all(r["drop_reason"] == "near_duplicate" for p, r in members if p != first)
    copies = by_text[unrelated[3]]
    assert [r["drop_reason"] for _, r in copies] == [None, "exact_duplicate", "exact_duplicate"]
    assert {(r["cluster_id"], r["cluster_size"]) for _, r in copies} == {(copies[0][0], 3)}
    assert [r["drop_reason"] for _, r in by_text[unrelated[20]]] == [None, "exact_duplicate"]
    assert by_text[hard_negative][0][1]["drop_reason"] is None and by_text[hard_negative][0][1]["cluster_size"] == 1
    assert stats["docs"] == len(stream) == 46
    assert (stats["exact_duplicates"], stats["near_duplicates"], stats["kept"]) == (3, 8, 35)
    assert stats["dropped"] == {"exact_duplicate": 3, "near_duplicate": 8}
    assert stats["verified_pairs"] == 12 and stats["candidate_pairs"] >= 12  # 3 pairs in each group
    assert stats["clusters"] == 6 and stats["largest_cluster"] == 3
    hist = stats["cluster_size_histogram"]
    assert (hist["1"], hist["2"], hist["3-4"], hist["5-8"]) == (29, 1, 5, 0)


def test_byte_identical_for_1_and_2_workers_and_reruns(planted, helpers, tmp_path):
    up = _upstream(helpers, tmp_path, planted[0], per_shard=12)
    helpers.run_stage(CFG, up, tmp_path / "w1", workers=1)
    helpers.run_stage(CFG, up, tmp_path / "w2", workers=2)
    helpers.run_stage(CFG, up, tmp_path / "again", workers=1)
    one = helpers.published_files(tmp_path / "w1")
    assert len([k for k in one if k.startswith("docs/")]) == 4 == len([k for k in one if k.startswith("signatures/")])
    assert one == helpers.published_files(tmp_path / "w2") == helpers.published_files(tmp_path / "again")


# 4 shards: a failure mid-signatures, at their end, mid-output; and one with a process pool.
@pytest.mark.parametrize("fail_after,workers", [(1, 1), (4, 1), (6, 1), (2, 2)])
def test_resume_after_injected_failure_is_byte_identical(planted, helpers, tmp_path, fail_after, workers):
    up = _upstream(helpers, tmp_path, planted[0], per_shard=12)
    helpers.run_stage(CFG, up, tmp_path / "clean")
    with pytest.raises(InjectedFailure):
        helpers.run_stage(CFG, up, tmp_path / "resumed", workers=workers, fail_after_shards=fail_after)
    assert len(helpers.published_files(tmp_path / "resumed")) == fail_after
    helpers.run_stage(CFG, up, tmp_path / "resumed", workers=workers)
    assert helpers.published_files(tmp_path / "resumed") == helpers.published_files(tmp_path / "clean")


def test_empty_input_and_empty_shards(helpers, tmp_path):
    stats = helpers.run_stage(CFG, helpers.make_upstream(tmp_path / "none", []), tmp_path / "o1")
    assert stats["docs"] == stats["kept"] == stats["candidate_pairs"] == 0
    assert helpers.output_rows(tmp_path / "o1") == []
    assert set(helpers.published_files(tmp_path / "o1")) >= {"docs/part-00000.parquet", "reports/lsh_s_curve.png"}
    all_dropped = helpers.make_upstream(tmp_path / "dropped", [helpers.rows_of(["a b c d e f"])], [["too_short"]])
    stats = helpers.run_stage(CFG, all_dropped, tmp_path / "o2")
    assert stats["docs"] == 0 and helpers.output_rows(tmp_path / "o2") == []


def test_single_document_and_all_identical(corpus, helpers, tmp_path):
    one = helpers.make_upstream(tmp_path / "one", [helpers.rows_of(["just one short document"])])
    stats = helpers.run_stage(CFG, one, tmp_path / "o1")
    rows = helpers.output_rows(tmp_path / "o1")
    assert (stats["kept"], rows[0]["drop_reason"], rows[0]["cluster_id"], rows[0]["cluster_size"]) == (1, None, 0, 1)
    same = corpus.doc()
    up = helpers.make_upstream(tmp_path / "same", [helpers.rows_of([same] * 6), helpers.rows_of([same] * 4, "e")])
    stats = helpers.run_stage(CFG, up, tmp_path / "o2")
    rows = helpers.output_rows(tmp_path / "o2")
    assert [r["drop_reason"] for r in rows] == [None] + ["exact_duplicate"] * 9
    assert {(r["cluster_id"], r["cluster_size"]) for r in rows} == {(0, 10)}
    assert (stats["kept"], stats["exact_duplicates"], stats["candidate_pairs"]) == (1, 9, 0)


def test_upstream_drops_are_skipped_and_columns_pass_through(corpus, helpers, tmp_path):
    texts = [corpus.doc(), corpus.doc(), corpus.doc()]
    texts.append(texts[0])  # an exact copy of a document the upstream stage dropped: nothing to collapse
    up = helpers.make_upstream(tmp_path / "up", [helpers.rows_of(texts)], [["boilerplate", None, None, None]])
    helpers.run_stage(CFG, up, tmp_path / "out")
    rows = helpers.output_rows(tmp_path / "out")
    assert [r["doc_id"] for r in rows] == ["d1", "d2", "d3"]
    assert [r["drop_reason"] for r in rows] == [None, None, None]
    assert list(rows[0]) == ["doc_id", "text", "source", "meta", "cluster_id", "cluster_size", "drop_reason"]


def test_cjk_documents_dedup_by_characters(helpers, tmp_path):
    import random
    rng = random.Random(4)
    han = lambda n: "".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(n))  # noqa: E731
    base, other = han(300), han(300)
    near = base[:100] + han(1) + base[101:200] + han(1) + base[201:]  # 2 of 300 characters changed
    up = helpers.make_upstream(tmp_path / "up", [helpers.rows_of([base, other, near])])
    stats = helpers.run_stage(CFG, up, tmp_path / "out")
    assert stats["unspaced_docs"] == 3
    assert [r["drop_reason"] for r in helpers.output_rows(tmp_path / "out")] == [None, None, "near_duplicate"]


def test_verification_rejects_lsh_false_positives(corpus, helpers, tmp_path):
    base = corpus.doc(400)
    stream = [base, corpus.edit(base, 40)]  # true Jaccard ~0.4: a likely candidate under a loose banding
    assert helpers.word_5gram_jaccard(*stream) < 0.6
    up = helpers.make_upstream(tmp_path / "up", [helpers.rows_of(stream)])
    loose = dict(num_perm=128, bands=64, rows=2)  # LSH threshold (1/64)^(1/2) = 0.125
    verified = helpers.run_stage(DedupConfig(**loose), up, tmp_path / "v")
    unverified = helpers.run_stage(DedupConfig(**loose, verify=False), up, tmp_path / "u")
    assert verified["candidate_pairs"] == unverified["candidate_pairs"] == 1
    assert (verified["verified_pairs"], verified["rejected_pairs"], verified["near_duplicates"]) == (0, 1, 0)
    assert (unverified["verified_pairs"], unverified["near_duplicates"]) == (1, 1)


def test_signature_files_and_reports(planted, helpers, tmp_path):
    stats = helpers.run_stage(CFG, _upstream(helpers, tmp_path, planted[0]), tmp_path / "out")
    with pa.memory_map(str(tmp_path / "out/signatures/part-00000.arrow")) as f:
        table = pa.ipc.open_file(f).read_all()
    assert table.num_rows == 20
    assert table.schema.field("signature").type == pa.list_(pa.uint32(), 128)
    assert table.schema.field("bands").type == pa.list_(pa.uint64(), stats["bands"])
    reports = tmp_path / "out/reports"
    assert (reports / "lsh_s_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((reports / "dedup_report.json").read_text())
    assert {k: report[k] for k in stats} == json.loads(json.dumps(stats))
    assert sum(report["candidate_jaccard_histogram"].values()) == stats["candidate_pairs"]
    sample = json.loads((reports / "clusters_sample.json").read_text())
    assert len(sample) == stats["clusters"] == 6
    for c in sample:
        kept, *dropped = c["members"]
        assert kept["drop_reason"] is None and kept["jaccard_to_kept"] == 1.0
        assert all(m["drop_reason"] in ("near_duplicate", "exact_duplicate") and m["jaccard_to_kept"] >= 0.8
                   for m in dropped)
        assert all(len(m["text"]) <= CFG.sample_chars for m in c["members"])


def test_config_validation_names_the_keys():
    with pytest.raises(ConfigError, match="dedup.bands and dedup.rows"):
        build(DedupConfig, {"bands": 8})
    with pytest.raises(ConfigError, match="exceeds dedup.num_perm = 64"):
        build(DedupConfig, {"bands": 9, "rows": 8, "num_perm": 64})
    with pytest.raises(ConfigError, match="threshold"):
        build(DedupConfig, {"threshold": 1.5})
    with pytest.raises(ConfigError, match="scheme"):
        build(DedupConfig, {"scheme": "minhash64"})


def test_real_tang_poems_exact_and_variant_character_duplicates(helpers, tmp_path):
    import re
    import unicodedata

    from helpers import datasets_or_skip
    poems = json.loads(datasets_or_skip("chinese_poetry", "tangshi", "poet.tang.0.json").read_text())
    texts = ["\n".join(p["paragraphs"]) for p in poems]
    up = helpers.make_upstream(tmp_path / "up", [helpers.rows_of(texts[i:i + 250]) for i in range(0, 1000, 250)])
    stats = helpers.run_stage(CFG, up, tmp_path / "out")
    assert stats["unspaced_docs"] == len(texts) == 1000
    assert stats["exact_duplicates"] == len(texts) - len(set(texts)) == 19

    def grams(t: str) -> set:  # character 5-grams of the text without punctuation or spaces
        t = re.sub(r"[^\w]|_", "", unicodedata.normalize("NFD", t.lower()))
        return {t[i:i + 5] for i in range(len(t) - 4)}
    rows = helpers.output_rows(tmp_path / "out")
    near = [r for r in rows if r["drop_reason"] == "near_duplicate"]
    assert len(near) == stats["near_duplicates"] >= 5  # variant characters (e.g. 叡/睿, 尊/樽) in repeated poems
    for r in near:
        a, b = grams(r["text"]), grams(rows[r["cluster_id"]]["text"])
        assert len(a & b) / len(a | b) >= 0.8
