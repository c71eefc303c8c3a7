"""MinHash signatures with datasketch's permutation families, computed in numpy over whole batches.

For the same 32-bit shingle hashes a signature equals ``datasketch.MinHash(num_perm, seed, scheme=...,
hashfunc=identity).hashvalues`` (tests check both schemes); the permutation parameters are datasketch's own.

- ``affine32`` (datasketch ≥ 2.0 default): h ↦ fmix32(h), then a·h + b mod 2^32 with a odd. The uint32
  wraparound *is* the modulo and each permutation is a bijection, so there is no overflow to worry about
  and no division: three cheap uint32 passes (multiply, add, min) per (shingle, permutation).
- ``legacy`` (datasketch < 2.0): (a·h + b) mod (2^61 − 1), then the low 32 bits. With a < 2^61 and h < 2^32
  the product a·h overflows uint64; datasketch lets it wrap before the modulo (its issues #212, #239) and we
  reproduce that wrap deliberately, bit for bit, for parity. It is ~3× slower (uint64 and a modulo).

Work is chunked to ~16k shingles × num_perm so the (num_perm × shingles) matrix stays in cache-sized pieces.
A document without shingles gets the empty signature (all 2^32 − 1), as in datasketch.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Literal

import numpy as np

from pipeline.dedup.mix import fmix32

Scheme = Literal["affine32", "legacy"]
EMPTY = np.uint32(0xFFFFFFFF)
_MERSENNE = np.uint64((1 << 61) - 1)
_LOW32 = np.uint64(0xFFFFFFFF)
_CHUNK = 1 << 14


@lru_cache(maxsize=8)
def permutations(num_perm: int, seed: int, scheme: Scheme) -> np.ndarray:
    """datasketch's (a, b) parameters as a (2, num_perm) array (uint32 for affine32, uint64 for legacy)."""
    from datasketch import MinHash
    a, b = MinHash(num_perm=num_perm, seed=seed, scheme=scheme).permutations
    dtype = np.uint32 if scheme == "affine32" else np.uint64
    perms = np.array([np.asarray(a, dtype=dtype), np.asarray(b, dtype=dtype)])
    perms.setflags(write=False)
    return perms


def _permuted(h: np.ndarray, perms: np.ndarray, scheme: Scheme) -> np.ndarray:
    """(num_perm, len(h)) permuted hash values, as uint32."""
    a, b = perms
    if scheme == "affine32":
        m = np.multiply.outer(a, fmix32(h))
        m += b[:, None]
        return m
    m = np.multiply.outer(a, h.astype(np.uint64))  # wraps modulo 2^64 exactly like datasketch
    m += b[:, None]
    m %= _MERSENNE
    return (m & _LOW32).astype(np.uint32)


def signatures(hashes: np.ndarray, offsets: np.ndarray, perms: np.ndarray, scheme: Scheme) -> np.ndarray:
    """Signatures (documents × num_perm, uint32) of the shingle hashes ``hashes[offsets[i]:offsets[i+1]]``."""
    n_docs, num_perm = len(offsets) - 1, perms.shape[1]
    sig = np.full((n_docs, num_perm), EMPTY, dtype=np.uint32)
    starts, ends = offsets[:-1], offsets[1:]
    for lo in range(0, len(hashes), _CHUNK):
        hi = min(lo + _CHUNK, len(hashes))
        # Documents with at least one shingle inside [lo, hi): a long document spans several chunks
        # and takes the minimum over its pieces.
        docs = np.flatnonzero((starts < hi) & (ends > lo) & (ends > starts))
        seg = np.maximum(starts[docs], lo) - lo
        part = np.minimum.reduceat(_permuted(hashes[lo:hi], perms, scheme), seg, axis=1).T
        sig[docs] = np.minimum(sig[docs], part)
    return sig
