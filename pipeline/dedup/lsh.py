"""LSH banding: (b, r) choice, band hashes, and candidate pairs grouped in arrays.

A pair of documents with Jaccard similarity s shares at least one of b bands of r rows with probability
P(s) = 1 − (1 − s^r)^b (the S-curve). (b, r) come from datasketch's own optimiser
(``datasketch.lsh._optimal_param``), which minimises fp_weight·(area under P below the threshold) +
fn_weight·(area above P over the threshold). We weight false negatives far above false positives because
every candidate is verified by its true Jaccard afterwards: a false positive costs a little verification
time, a false negative is a duplicate that survives.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from pipeline.dedup.mix import fmix64, odd_constants

_ROW_MULT = odd_constants(1024, salt=0xB5)


@lru_cache(maxsize=32)
def optimal_params(threshold: float, num_perm: int, fn_weight: float) -> tuple[int, int]:
    from datasketch.lsh import _optimal_param
    return _optimal_param(threshold, num_perm, 1.0 - fn_weight, fn_weight)


def s_curve(s: np.ndarray | float, bands: int, rows: int) -> np.ndarray | float:
    """P(a pair with Jaccard s becomes a candidate)."""
    return 1.0 - (1.0 - np.power(s, rows)) ** bands


def band_hashes(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(documents × bands) uint64 keys: equal keys ⇔ (up to 2^-64 collisions) equal band slices."""
    n = len(sig)
    cols = sig[:, :bands * rows].reshape(n, bands, rows).astype(np.uint64)
    keys = np.sum(cols * _ROW_MULT[:rows], axis=2, dtype=np.uint64)  # wraps modulo 2^64
    return fmix64(keys + np.arange(bands, dtype=np.uint64))


def candidate_pairs(keys: np.ndarray, members: np.ndarray, window: int) -> np.ndarray:
    """Unique candidate pairs (k × 2, int64, first < second) among ``members`` (sorted document indices).

    ``keys`` holds the band hashes of the members (len(members) × bands). Per band, members are sorted by key
    (stably, so a bucket lists its documents in stream order) and each is paired with the next ``window``
    members of its bucket: every pair in buckets of up to window + 1 documents, and a connected band of
    pairs in larger ones, without the quadratic blow-up of a huge bucket.
    """
    pairs = []
    for j in range(keys.shape[1]):
        order = np.argsort(keys[:, j], kind="stable")
        sk = keys[order, j]
        for d in range(1, window + 1):
            same = np.flatnonzero(sk[:-d] == sk[d:])
            if not same.size:
                break  # no bucket holds more than d documents
            pairs.append(np.column_stack([order[same], order[same + d]]))
    if not pairs:
        return np.zeros((0, 2), dtype=np.int64)
    p = members[np.concatenate(pairs)]
    p.sort(axis=1)
    return np.unique(p, axis=0)
