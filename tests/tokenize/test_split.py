"""Train/val split: whole clusters, deterministic from the seed, at least one doc on each side."""
from __future__ import annotations

import numpy as np

from pipeline.tokenize.split import assign, key_hash, plan_split


def test_clusters_never_straddle_the_split(manifest_of, h):
    n = 300
    texts = h.make_texts(n)
    clusters = [i // 4 for i in range(n)]  # 75 clusters of 4 documents
    plan = plan_split(manifest_of(texts, cluster_ids=clusters).path, seed=1, val_fraction=0.3)
    assert plan.key == "cluster_id"
    by_cluster: dict[int, set[bool]] = {}
    for c, v in zip(clusters, plan.is_val.tolist()):
        by_cluster.setdefault(c, set()).add(v)
    assert all(len(sides) == 1 for sides in by_cluster.values())
    val_clusters = sum(1 for s in by_cluster.values() if True in s)
    assert 10 <= val_clusters <= 35  # ~30% of 75, by hash
    assert plan.docs("val") == 4 * val_clusters and plan.docs("train") == n - 4 * val_clusters


def test_split_depends_on_seed_and_key_only(manifest_of, h):
    texts = h.make_texts(120)
    ids = [f"doc-{i}" for i in range(120)]
    a = plan_split(manifest_of(texts, doc_ids=ids, docs_per_shard=7).path, seed=5, val_fraction=0.25)
    b = plan_split(manifest_of(texts, doc_ids=ids, docs_per_shard=50).path, seed=5, val_fraction=0.25)
    c = plan_split(manifest_of(texts, doc_ids=ids).path, seed=6, val_fraction=0.25)
    assert a.key == "doc_id" and np.array_equal(a.is_val, b.is_val)
    assert not np.array_equal(a.is_val, c.is_val)
    expected = [key_hash(5, f"d:{i}") / 2.0**64 < 0.25 for i in ids]
    assert a.is_val.tolist() == expected and a.note == ""


def test_guarantees_move_whole_keys():
    h = np.array([9, 5, 5, 7], dtype=np.uint64) << np.uint64(60)  # three keys; two docs share hash 5
    val, note = assign(h, 1e-9)  # nothing below the fraction: the lowest key (2 docs) goes to val
    assert val.tolist() == [False, True, True, False] and "lowest-hash key went to val" in note
    val, note = assign(h, 0.999999)  # everything below: the highest key goes back to train
    assert val.tolist() == [False, True, True, True] and "highest-hash key went to train" in note
    val, note = assign(np.array([7, 7, 7], dtype=np.uint64), 0.5)
    assert val.tolist() == [False] * 3 and "single split key" in note
    val, note = assign(np.array([1], dtype=np.uint64), 0.5)
    assert val.tolist() == [False] and "single document" in note
    val, note = assign(h, 0.0)
    assert not val.any() and note == ""
