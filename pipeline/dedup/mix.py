"""Integer mixing in numpy: MurmurHash3's finalizers, fixed avalanching bijections.

All arithmetic is unsigned and wraps on purpose: numpy's array operations reduce modulo 2^32 / 2^64
silently, which is exactly the ring these functions are defined on.
"""
from __future__ import annotations

import numpy as np

GOLDEN64 = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / golden ratio, odd


def fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3 32-bit finalizer (the same constants as datasketch's ``_fmix(h, 32)``)."""
    h = h ^ (h >> np.uint32(16))
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h


def fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3 64-bit finalizer."""
    h = h ^ (h >> np.uint64(33))
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h


def odd_constants(n: int, salt: int) -> np.ndarray:
    """``n`` distinct pseudo-random odd 64-bit multipliers, fixed by ``salt`` (used per n-gram position)."""
    k = np.arange(1, n + 1, dtype=np.uint64) * GOLDEN64 + np.uint64(salt)
    return fmix64(k) | np.uint64(1)
