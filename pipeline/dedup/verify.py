"""Exact Jaccard similarity of candidate pairs, on their shingle-hash sets, vectorized over pairs.

Each document's set is its sorted unique shingle hashes. For a chunk of pairs, the two sets of pair k are
tagged with k (key = k·2^32 + hash) and sorted together: since each set holds a hash once, a key seen twice
is an element of the intersection. |A ∪ B| = |A| + |B| − |A ∩ B|.
"""
from __future__ import annotations

import numpy as np

_CHUNK_ELEMENTS = 1 << 22


def unique_sets(hashes: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique uint32 hashes per document: (values, offsets), in the layout of the input."""
    n = len(offsets) - 1
    doc = np.repeat(np.arange(n, dtype=np.uint64), np.diff(offsets))
    keys = np.unique((doc << np.uint64(32)) | hashes.astype(np.uint64))
    out_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount((keys >> np.uint64(32)).astype(np.int64), minlength=n), out=out_offsets[1:])
    return (keys & np.uint64(0xFFFFFFFF)).astype(np.uint32), out_offsets


def _gather(values: np.ndarray, offsets: np.ndarray, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The concatenated sets of ``docs`` and, for each element, its position in ``docs``."""
    starts, sizes = offsets[docs], offsets[docs + 1] - offsets[docs]
    total = int(sizes.sum())
    first = np.cumsum(sizes) - sizes
    idx = np.repeat(starts - first, sizes) + np.arange(total)
    return values[idx], np.repeat(np.arange(len(docs), dtype=np.uint64), sizes)


def jaccard(values: np.ndarray, offsets: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Jaccard similarity of each pair (rows of document positions into the sets); 0.0 for two empty sets."""
    sizes = np.diff(offsets)
    work = sizes[pairs[:, 0]] + sizes[pairs[:, 1]]
    out = np.zeros(len(pairs), dtype=np.float64)
    lo = 0
    while lo < len(pairs):
        # Grow the chunk to about _CHUNK_ELEMENTS set elements (at least one pair).
        hi = lo + max(1, int(np.searchsorted(np.cumsum(work[lo:]), _CHUNK_ELEMENTS, side="right")))
        chunk = pairs[lo:hi]
        va, ta = _gather(values, offsets, chunk[:, 0])
        vb, tb = _gather(values, offsets, chunk[:, 1])
        keys = np.sort(np.concatenate([(ta << np.uint64(32)) | va, (tb << np.uint64(32)) | vb]))
        dup = keys[1:][keys[1:] == keys[:-1]]
        inter = np.bincount((dup >> np.uint64(32)).astype(np.int64), minlength=len(chunk))
        union = work[lo:hi] - inter
        out[lo:hi] = np.divide(inter, union, out=np.zeros(len(chunk)), where=union > 0)
        lo = hi
    return out
