"""Gopher repetition statistics over word n-grams (Rae et al. 2021, table A1), vectorized.

- ``top``: for n = 2, 3, 4, the characters covered by the most frequent n-gram: the length of the
  n-gram (its words joined by ``sep``) times its number of occurrences, overlapping ones included.
  Ties go to the n-gram seen first in the document, as with ``Counter.most_common``.
- ``dup``: for n = 5..10, the characters (words joined without separator) of n-grams that repeat an
  earlier one, in a left-to-right scan that jumps past a counted n-gram (so no overlap counts twice).

Words become exact integer ids (the position of the word's first occurrence, one C-level pass) and
n-gram keys are ids packed into one int64, so counting is one numpy sort per n. The left-to-right scan
is sequential, but only positions whose n-gram occurs at least twice can change its result, and an
(n+1)-gram can only repeat where its n-gram prefix does: a short Python loop visits just those
positions, and a document without a repeated 5-gram never enters it.
"""
from __future__ import annotations

from collections import Counter
from itertools import compress

import numpy as np

TOP_NS = (2, 3, 4)
DUP_NS = (5, 6, 7, 8, 9, 10)
_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant for the rolling hash of long documents
_INT64 = 2 ** 63
_NO_REPEAT = np.zeros(0, dtype=np.int64)  # marker: no 4-gram occurs twice


def ngram_chars(words: list[str], sep: int = 1) -> tuple[list[int], list[int]]:
    """(top n-gram chars for n in TOP_NS, duplicated n-gram chars for n in DUP_NS).

    ``sep`` is the length of the separator between the words of a top n-gram (1 for a space; 0 for
    CJK text, whose words are characters written without spaces).
    """
    n = len(words)
    if n < 2:
        return [0] * len(TOP_NS), [0] * len(DUP_NS)
    # setdefault returns the position where the word first occurred: an exact, deterministic id < n.
    ids = np.fromiter(map({}.setdefault, words, range(n)), dtype=np.int64, count=n)
    top, keys = _top(ids, words, sep)
    return top, _dup(ids, words, keys)


def _top(ids: np.ndarray, words: list[str], sep: int) -> tuple[list[int], np.ndarray | None]:
    """Top n-gram chars, and the packed keys of the 4-grams: ``_NO_REPEAT`` if no 4-gram repeats (so
    no 5-gram can), None if they do not fit an int64."""
    base = len(ids)
    out = []
    keys: np.ndarray | None = ids
    top = 2
    for n in TOP_NS:
        if base < n:
            out.append(0)
            continue
        if base ** n < _INT64:
            keys = keys[:-1] * base + ids[n - 1:]  # exact: each id < base
            if top > 1:
                top, first = _most_frequent(keys)
            else:  # every (n-1)-gram is unique, so is every n-gram: the first one is "the top"
                first = 0
        else:  # a huge document: compare rows of ids
            keys = None
            rows = np.lib.stride_tricks.sliding_window_view(ids, n)
            _, firsts, counts = np.unique(rows, axis=0, return_index=True, return_counts=True)
            top = int(counts.max())
            first = int(firsts[counts == top].min())
        out.append((sum(map(len, words[first:first + n])) + sep * (n - 1)) * top)
    return out, (keys if top > 1 else _NO_REPEAT)


def _most_frequent(keys: np.ndarray) -> tuple[int, int]:
    """(count of the most frequent key, first position of the earliest such key).

    Array methods rather than numpy functions throughout: on arrays this small, the functions'
    Python wrappers cost more than the work.
    """
    size = len(keys)
    ordered = keys.copy()
    ordered.sort()
    edges = np.empty(size + 1, dtype=bool)  # True where a run of equal keys starts (and at the end)
    edges[0] = edges[size] = True
    np.not_equal(ordered[1:], ordered[:-1], out=edges[1:size])
    starts = edges.nonzero()[0]
    if len(starts) == size + 1:  # every key is unique
        return 1, 0
    counts = starts[1:] - starts[:-1]
    top = counts.max()
    best = ordered[starts[:-1][counts == top]]
    if len(best) == 1:
        return int(top), int((keys == best[0]).argmax())
    slot = best.searchsorted(keys)  # membership in sorted ``best``
    slot[slot == len(best)] = 0
    return int(top), int((best[slot] == keys).argmax())


def _dup(ids: np.ndarray, words: list[str], keys4: np.ndarray | None) -> list[int]:
    n_words = len(ids)
    out = [0] * len(DUP_NS)
    n = DUP_NS[0]
    if n_words <= n or keys4 is _NO_REPEAT:
        return out
    if keys4 is not None and len(keys4) == n_words - 3 and n_words ** n < _INT64:
        keys = keys4[:-1] * n_words + ids[n - 1:]  # exact 5-gram keys
    else:  # rolling hash: equal 5-grams have equal hashes; repeats are confirmed below
        keys = (ids + 1).astype(np.uint64)
        for k in range(1, n):
            keys = keys[:-1] * _MIX + (ids[k:] + 1).astype(np.uint64)
    ordered = keys.copy()
    ordered.sort()
    same = ordered[1:] == ordered[:-1]
    if not same.any():  # no 5-gram repeats, so no longer n-gram does
        return out
    repeated = ordered[1:][same]
    slot = repeated.searchsorted(keys)
    slot[slot == len(repeated)] = 0
    positions = (repeated[slot] == keys).nonzero()[0].tolist()
    # Exact keys from here on: the tuple of the 5 words, then (key of the (n-1)-gram, next word).
    keys = [tuple(words[p:p + n]) for p in positions]
    for j, n in enumerate(DUP_NS):
        if j:
            while positions and positions[-1] + n > n_words:  # positions ascend: only the tail ends early
                positions.pop()
            keys = [(key, words[p + n - 1]) for p, key in zip(positions, keys)]
        counts = Counter(keys)
        if not counts or max(counts.values()) < 2:
            break
        repeats = [c > 1 for c in map(counts.__getitem__, keys)]
        positions, keys = list(compress(positions, repeats)), list(compress(keys, repeats))
        out[j] = _scan(positions, keys, words, n)
    return out


def _scan(positions: list[int], keys: list[tuple], words: list[str], n: int) -> int:
    """Gopher's non-overlapping left-to-right scan, visiting only positions whose n-gram repeats.

    Skipping the others is exact: a position whose n-gram occurs once adds to the "seen" set a key
    that nothing later can match.
    """
    seen: set[tuple] = set()
    resume = chars = 0
    for p, key in zip(positions, keys):
        if p < resume:
            continue
        if key in seen:
            chars += sum(map(len, words[p:p + n]))
            resume = p + n
        else:
            seen.add(key)
    return chars
