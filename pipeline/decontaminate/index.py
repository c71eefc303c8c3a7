"""The evaluation-text index: sorted 64-bit n-gram hashes, each with the sources that hold it.

A source is one ``task:split`` (bit i of a uint64 mask), so a hash found in a document tells at once every
evaluation set it belongs to. An evaluation text of at least n tokens contributes all its n-grams; a shorter
one with at least ``min`` tokens contributes one window of its whole length, so the documents are also
scanned with windows of those lengths.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from pipeline.decontaminate.ngrams import UNITS, Windows, stream, windows

MAX_SOURCES = 64
_BATCH_TEXTS = 512
_FILTER_SLOTS_PER_KEY = 32  # prefilter size: ~3 % of absent hashes reach the binary search


def prefilter(keys: np.ndarray) -> tuple[np.ndarray, np.uint64]:
    """A table of 2^b flags indexed by a hash's top b bits: the lookup's cheap first test. A binary search
    over the keys costs a cache miss per step; one gather into a table of a few MB does not."""
    bits = int(np.clip(np.ceil(np.log2(max(1, len(keys)) * _FILTER_SLOTS_PER_KEY)), 16, 26))
    table = np.zeros(1 << bits, dtype=bool)
    shift = np.uint64(64 - bits)
    table[keys >> shift] = True
    return table, shift


@dataclass(frozen=True)
class GramSpec:
    n: dict[str, int]       # window length per unit ("word", "char")
    min_len: dict[str, int]  # shortest evaluation text (in units) protected as a whole


@dataclass
class EvalIndex:
    keys: np.ndarray                 # sorted unique uint64 window hashes
    masks: np.ndarray                # uint64: bit i set when source i holds the key
    names: list[str]                 # source names, "task:split"
    lengths: dict[str, list[int]]    # window lengths to scan documents with, per unit
    texts: int = 0                   # evaluation texts indexed
    unprotected: int = 0             # … of which too short to contribute any window
    per_source: dict[str, int] = field(default_factory=dict)  # distinct keys per source
    heldout: dict[str, int] = field(default_factory=dict)     # held-out stdlib unit → source mask

    def __post_init__(self) -> None:
        self._table, self._shift = prefilter(self.keys)

    def __getstate__(self) -> dict:
        # Sent to every worker with each shard task: the table is rebuilt there rather than pickled.
        return {k: v for k, v in self.__dict__.items() if k not in ("_table", "_shift")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__post_init__()

    def lookup(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions of the hashes present in the index, and their source masks."""
        if len(self.keys) == 0 or len(hashes) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.uint64)
        maybe = np.flatnonzero(self._table[hashes >> self._shift])
        at = np.searchsorted(self.keys, hashes[maybe])
        at[at == len(self.keys)] = 0
        hit = self.keys[at] == hashes[maybe]
        return maybe[hit], self.masks[at[hit]]

    def sources_of(self, mask: int) -> list[str]:
        return [name for i, name in enumerate(self.names) if mask >> i & 1]


def text_windows(texts: Sequence[str], unit: str, spec: GramSpec) -> tuple[Windows, np.ndarray]:
    """An evaluation batch's windows (all n-grams, or the whole text when shorter) and each text's length."""
    s = stream(unit, texts)
    counts = s.counts()
    n, lo = spec.n[unit], spec.min_len[unit]
    short = sorted({int(c) for c in counts if lo <= c < n})
    w = windows(s, [n, *short])
    keep = (w.length == n) | (w.length == counts[w.text])
    return w.take(np.flatnonzero(keep)), counts


def build_index(sources: Sequence[tuple[str, Sequence[str]]], spec: GramSpec,
                heldout: dict[str, list[str]] | None = None) -> EvalIndex:
    """Index the evaluation texts of each named source, and the held-out units (unit → source names)."""
    if len(sources) > MAX_SOURCES:
        raise ValueError(f"decontaminate: {len(sources)} task splits to protect, at most {MAX_SOURCES} supported")
    keys, bits = [np.zeros(0, np.uint64)], [np.zeros(0, np.uint64)]
    lengths: dict[str, set[int]] = {u: set() for u in UNITS}
    per_source, n_texts, unprotected = {}, 0, 0
    for i, (name, texts) in enumerate(sources):
        source_keys = [np.zeros(0, np.uint64)]
        covered = np.zeros(len(texts), bool)
        for lo in range(0, len(texts), _BATCH_TEXTS):
            batch = list(texts[lo:lo + _BATCH_TEXTS])
            for unit in UNITS:
                w, counts = text_windows(batch, unit, spec)
                source_keys.append(w.hashes)
                covered[lo + np.unique(w.text)] = True
                lengths[unit].update(int(k) for k in np.unique(w.length))
        h = np.unique(np.concatenate(source_keys))
        per_source[name] = len(h)
        keys.append(h)
        bits.append(np.full(len(h), np.uint64(1) << np.uint64(i), np.uint64))
        n_texts += len(texts)
        unprotected += int(np.count_nonzero(~covered))
    k, b = np.concatenate(keys), np.concatenate(bits)
    order = np.argsort(k, kind="stable")
    k, b = k[order], b[order]
    first = np.flatnonzero(np.r_[True, k[1:] != k[:-1]]) if len(k) else np.zeros(0, np.int64)
    masks = np.bitwise_or.reduceat(b, first) if len(k) else np.zeros(0, np.uint64)
    names = [name for name, _ in sources]
    unit_masks = {u: sum(1 << names.index(s) for s in held) for u, held in (heldout or {}).items()}
    return EvalIndex(k[first], masks, names, {u: sorted(v) for u, v in lengths.items()}, n_texts, unprotected,
                     per_source, unit_masks)
