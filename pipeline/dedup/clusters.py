"""Exact-duplicate groups and connected components, in numpy arrays indexed by stream position.

Documents are numbered in stream order (input shards in name order, rows in order). Both rules keep the
*first* document in stream order: an exact-duplicate group keeps its first member, and a cluster (a
connected component of exact-duplicate links and verified near-duplicate pairs) keeps its first member,
whose stream position is also the cluster's id.
"""
from __future__ import annotations

import numpy as np


def exact_representatives(digests: np.ndarray) -> np.ndarray:
    """For each document, the stream position of the first document with the same (n × 2 uint64) digest."""
    n = len(digests)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((np.arange(n), digests[:, 1], digests[:, 0]))
    sd = digests[order]
    new = np.r_[True, np.any(sd[1:] != sd[:-1], axis=1)]
    first = order[new]
    rep = np.empty(n, dtype=np.int64)
    rep[order] = first[np.cumsum(new) - 1]
    return rep


def components(n: int, edges: np.ndarray) -> np.ndarray:
    """Label each of ``n`` nodes with the smallest node of its connected component (edges: k × 2 ints).

    Union-find on arrays: hook the root of each edge's larger label onto the smaller one
    (``np.minimum.at``), then compress paths by pointer jumping (labels = labels[labels]) to a fixed point;
    repeat until every edge joins equal labels. A label is always a node of the same component and never
    above the node itself, so the fixed point of each component is its smallest node.
    """
    labels = np.arange(n, dtype=np.int64)
    if len(edges) == 0:
        return labels
    u, v = edges[:, 0], edges[:, 1]
    while True:
        ru, rv = labels[u], labels[v]  # roots: labels are fully compressed here
        low = np.minimum(ru, rv)
        np.minimum.at(labels, ru, low)
        np.minimum.at(labels, rv, low)
        while True:
            jumped = labels[labels]
            if np.array_equal(jumped, labels):
                break
            labels = jumped
        if np.array_equal(labels[u], labels[v]):
            return labels
