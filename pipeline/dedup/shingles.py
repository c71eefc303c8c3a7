"""Shingle hashes of a batch of documents, computed in numpy without one Python call per word or shingle.

Spaced scripts get word n-grams (default 5) of the simplified text. Every word is hashed once as a
polynomial over its bytes, for the whole batch at once: with the prefix sums H[i] = Σ_{j<i} byte_j·K^j
(mod 2^64), the word [s, e) hashes to (H[e] − H[s])·K^−s, and K odd makes K^−s exist mod 2^64. An n-gram
then combines its n word hashes with per-position odd multipliers and a final avalanche (fmix64).
Unspaced scripts (CJK, Thai, …; see ``text.unspaced_share``) get character n-grams (default 5) of the
simplified text with the spaces removed. A document with fewer tokens than n yields a single shingle of all
its tokens; a document without tokens yields none.

Shingles are reduced to 32-bit hashes (the high half of the 64-bit n-gram hash): the width that
datasketch's 32-bit MinHash schemes take from their ``hashfunc``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pipeline.dedup import text as textmod
from pipeline.dedup.mix import GOLDEN64, fmix64, odd_constants

_K = 0x100000001B3  # odd (FNV-1 64-bit prime), so invertible modulo 2^64
_K_INV = pow(_K, -1, 1 << 64)
_MAX_N = 64
_WORD_POS = odd_constants(_MAX_N, salt=0x57)   # n-gram position multipliers for word tokens
_CHAR_POS = odd_constants(_MAX_N, salt=0xC4)   # … and for character tokens (a separate hash domain)
_CHAR_SALT = np.uint64(0x2545F4914F6CDD1D)


@dataclass(frozen=True)
class ShingleSpec:
    word_ngram: int = 5
    char_ngram: int = 5
    unspaced_share: float = 0.3  # char n-grams when this share of visible characters is from an unspaced script

    def __post_init__(self) -> None:
        assert 1 <= self.word_ngram <= _MAX_N and 1 <= self.char_ngram <= _MAX_N, self
        assert 0 < self.unspaced_share <= 1, self


@dataclass
class Shingles:
    """Per-document shingle hashes of a batch: ``hashes[offsets[i]:offsets[i + 1]]`` belong to document i."""
    hashes: np.ndarray    # uint32, in document order; a document's shingles may repeat
    offsets: np.ndarray   # int64, len = documents + 1
    unspaced: np.ndarray  # bool per document: shingled by characters

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)


class _Powers:
    """K^j and K^−j mod 2^64 for j < size, grown on demand (one table per process)."""

    def __init__(self) -> None:
        self.pw = self.inv = np.ones(1, dtype=np.uint64)

    def get(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        if len(self.pw) < size:
            size = max(size, 2 * len(self.pw))
            self.pw = np.ones(size, dtype=np.uint64)
            self.pw[1:] = np.cumprod(np.full(size - 1, _K, dtype=np.uint64))  # wraps modulo 2^64
            self.inv = np.ones(size, dtype=np.uint64)
            self.inv[1:] = np.cumprod(np.full(size - 1, _K_INV, dtype=np.uint64))
        return self.pw[:size], self.inv[:size]


_POWERS = _Powers()


def word_tokens(chunks: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Hash every space-separated word of each simplified chunk: (uint64 hashes, chunk index per word)."""
    if not chunks:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    joined = b" ".join(chunks)  # the separator guarantees that no word spans two documents
    lengths = np.fromiter((len(c) + 1 for c in chunks), dtype=np.int64, count=len(chunks))
    chunk_starts = np.cumsum(lengths) - lengths
    b = np.frombuffer(joined, dtype=np.uint8)
    edges = np.diff((b != 0x20).astype(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    pw, inv = _POWERS.get(len(b) + 1)
    prefix = np.zeros(len(b) + 1, dtype=np.uint64)
    np.cumsum(b.astype(np.uint64) * pw[:len(b)], out=prefix[1:])
    h = (prefix[ends] - prefix[starts]) * inv[starts]
    h = fmix64(h + (ends - starts).astype(np.uint64) * GOLDEN64)
    return h, np.searchsorted(chunk_starts, starts, side="right") - 1


def char_tokens(cps: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Hash every code point of each array: (uint64 hashes, array index per code point)."""
    if not cps:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    counts = np.fromiter((len(c) for c in cps), dtype=np.int64, count=len(cps))
    flat = np.concatenate(cps).astype(np.uint64)
    return fmix64(flat + _CHAR_SALT), np.repeat(np.arange(len(cps)), counts)


def ngrams(tok: np.ndarray, doc: np.ndarray, n: int, n_docs: int, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """n-gram hashes of token streams grouped by ``doc`` (sorted): (uint64 hashes, doc per n-gram)."""
    m = len(tok)
    counts = np.bincount(doc, minlength=n_docs)
    parts_h, parts_d = [], []
    if m >= n:
        w = m - n + 1
        g = tok[:w] * pos[0]
        for k in range(1, n):
            g += tok[k:k + w] * pos[k]
        valid = doc[:w] == doc[n - 1:]
        parts_h.append(g[valid])
        parts_d.append(doc[:w][valid])
    short = np.flatnonzero(counts[doc] < n)  # tokens of documents with fewer than n tokens
    if short.size:
        first = (np.cumsum(counts) - counts)[doc[short]]
        contrib = tok[short] * pos[short - first]
        seg = np.flatnonzero(np.r_[True, doc[short][1:] != doc[short][:-1]])
        parts_h.append(np.add.reduceat(contrib, seg))
        parts_d.append(doc[short][seg])
    if not parts_h:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    h, d = np.concatenate(parts_h), np.concatenate(parts_d)
    if len(parts_h) > 1:
        order = np.argsort(d, kind="stable")
        h, d = h[order], d[order]
    return fmix64(h + np.uint64(n)), d


def shingle_hashes(texts: Sequence[str], spec: ShingleSpec) -> Shingles:
    """The shingle hashes of each text (see the module docstring)."""
    n_docs = len(texts)
    spaced_idx, spaced, unspaced_idx, unspaced = [], [], [], []
    for i, t in enumerate(texts):
        if textmod.unspaced_share(t) >= spec.unspaced_share:
            cps = textmod.codepoints(textmod.simplify_unicode(t))
            unspaced_idx.append(i)
            unspaced.append(cps[cps != 0x20])
        else:
            spaced_idx.append(i)
            spaced.append(textmod.simplify(t))
    parts_h, parts_d = [], []
    for idx, tokens, n, pos in ((spaced_idx, word_tokens(spaced), spec.word_ngram, _WORD_POS),
                                (unspaced_idx, char_tokens(unspaced), spec.char_ngram, _CHAR_POS)):
        if idx:
            h, d = ngrams(tokens[0], tokens[1], n, len(idx), pos)
            parts_h.append(h)
            parts_d.append(np.asarray(idx, dtype=np.int64)[d])
    flags = np.zeros(n_docs, dtype=bool)
    flags[unspaced_idx] = True
    if not parts_h:
        return Shingles(np.zeros(0, np.uint32), np.zeros(n_docs + 1, np.int64), flags)
    h, d = np.concatenate(parts_h), np.concatenate(parts_d)
    if len(parts_h) > 1:
        order = np.argsort(d, kind="stable")
        h, d = h[order], d[order]
    offsets = np.zeros(n_docs + 1, dtype=np.int64)
    np.cumsum(np.bincount(d, minlength=n_docs), out=offsets[1:])
    return Shingles((h >> np.uint64(32)).astype(np.uint32), offsets, flags)
