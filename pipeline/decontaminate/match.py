"""Find the documents of a batch that share a window with the evaluation index."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pipeline.decontaminate.index import EvalIndex
from pipeline.decontaminate.ngrams import UNITS, stream, windows


@dataclass
class Matches:
    """One entry per contaminated document of the batch, in batch order."""
    doc: np.ndarray     # int64 position in the batch
    mask: np.ndarray    # uint64 sources matched (bit i = index.names[i])
    hits: np.ndarray    # int64 matched windows
    unit: np.ndarray    # int64 index into UNITS of the first matched window
    start: np.ndarray   # int64 token position of the first matched window
    length: np.ndarray  # int64 its length in tokens

    def __len__(self) -> int:
        return len(self.doc)


def scan(texts: Sequence[str], index: EvalIndex) -> Matches:
    """Every document sharing at least one window with the index; its first window is the earliest one of
    the word stream (else of the character stream), the longest when several start there."""
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("doc", "mask", "unit", "start", "length")}
    for u, unit in enumerate(UNITS):
        if not index.lengths[unit]:
            continue
        w = windows(stream(unit, texts), index.lengths[unit])
        found, masks = index.lookup(w.hashes)
        cols["doc"].append(w.text[found])
        cols["mask"].append(masks)
        cols["unit"].append(np.full(len(found), u, np.int64))
        cols["start"].append(w.start[found])
        cols["length"].append(w.length[found])
    if not cols["doc"] or sum(len(d) for d in cols["doc"]) == 0:
        z = np.zeros(0, np.int64)
        return Matches(z, np.zeros(0, np.uint64), z, z, z, z)
    doc, mask, unit, start, length = (np.concatenate(cols[k]) for k in ("doc", "mask", "unit", "start", "length"))
    order = np.lexsort((-length, start, unit, doc))
    doc, mask, unit, start, length = doc[order], mask[order], unit[order], start[order], length[order]
    first = np.flatnonzero(np.r_[True, doc[1:] != doc[:-1]])
    hits = np.diff(np.r_[first, len(doc)])
    return Matches(doc[first], np.bitwise_or.reduceat(mask, first), hits, unit[first], start[first], length[first])
