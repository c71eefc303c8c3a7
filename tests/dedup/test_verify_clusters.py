"""Exact Jaccard verification, exact-duplicate groups and connected components."""
from __future__ import annotations

import numpy as np

from pipeline.dedup import verify
from pipeline.dedup.clusters import components, exact_representatives


def _sets(*groups: list[int]) -> tuple[np.ndarray, np.ndarray]:
    hashes = np.array([h for g in groups for h in g], dtype=np.uint32)
    offsets = np.cumsum([0] + [len(g) for g in groups])
    return verify.unique_sets(hashes, offsets)


def test_jaccard_matches_hand_computation():
    # A = {1,2,3,4}, B = {3,4,5} (5 given twice), C = {}, D = {7}, E = {1,2,3,4}
    values, offsets = _sets([4, 1, 3, 2], [5, 3, 5, 4], [], [7], [1, 2, 3, 4])
    assert values.tolist() == [1, 2, 3, 4, 3, 4, 5, 7, 1, 2, 3, 4]  # sorted, unique per document
    pairs = np.array([[0, 1], [0, 4], [0, 3], [2, 2], [1, 3]])
    assert verify.jaccard(values, offsets, pairs).tolist() == [2 / 5, 1.0, 0.0, 0.0, 0.0]


def test_jaccard_in_many_chunks_equals_python_sets(monkeypatch):
    rng = np.random.default_rng(3)
    groups = [rng.integers(0, 60, rng.integers(1, 40)).tolist() for _ in range(30)]
    values, offsets = _sets(*groups)
    pairs = np.array([(i, j) for i in range(30) for j in range(i + 1, 30)])
    monkeypatch.setattr(verify, "_CHUNK_ELEMENTS", 50)  # force ~one pair per chunk
    got = verify.jaccard(values, offsets, pairs)
    expected = [len(set(groups[i]) & set(groups[j])) / len(set(groups[i]) | set(groups[j])) for i, j in pairs]
    assert np.allclose(got, expected, rtol=0, atol=1e-12)


def test_exact_representatives_keep_first_in_stream_order():
    d = np.array([[5, 1], [2, 2], [5, 1], [2, 2], [9, 9], [5, 1]], dtype=np.uint64)
    assert exact_representatives(d).tolist() == [0, 1, 0, 1, 4, 0]
    assert exact_representatives(np.zeros((0, 2), np.uint64)).tolist() == []


def test_components_label_with_smallest_member():
    edges = np.array([[5, 3], [3, 1], [7, 8], [8, 6], [2, 2]])
    assert components(10, edges).tolist() == [0, 1, 2, 1, 4, 1, 6, 6, 6, 9]
    assert components(3, np.zeros((0, 2), np.int64)).tolist() == [0, 1, 2]


def test_components_match_reference_union_find_on_random_graph():
    rng = np.random.default_rng(5)
    n, edges = 500, rng.integers(0, 500, (400, 2))
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x
    for a, b in edges:
        ra, rb = find(a), find(b)
        parent[max(ra, rb)] = min(ra, rb)
    smallest: dict[int, int] = {}
    expected = [smallest.setdefault(find(i), i) for i in range(n)]
    assert components(n, edges).tolist() == expected
