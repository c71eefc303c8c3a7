"""Dedup configuration: exact hashing, then MinHash LSH with verified Jaccard."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pipeline.configtypes import SEED_LIMIT, ConfigError, bounded


@dataclass(frozen=True)
class DedupConfig:
    """Near-duplicates are pairs whose word 5-gram (or, for CJK-like text, character 5-gram) sets have a
    Jaccard similarity of at least ``threshold``; exact duplicates have the same normalized text.
    Every group keeps its first document in stream order.
    """
    threshold: float = bounded(0.8, gt=0.0, lt=1.0)  # Jaccard similarity at which documents are near-duplicates
    num_perm: int = bounded(128, ge=2, le=1024)      # MinHash permutations (signature length)
    bands: int | None = bounded(None, ge=1)          # LSH bands b; None: datasketch's optimiser picks (b, r)
    rows: int | None = bounded(None, ge=1)           # rows per band r; set together with bands
    fn_weight: float = bounded(0.98, gt=0.0, lt=1.0)  # false-negative weight in the optimiser (fp: 1 - this)
    scheme: Literal["affine32", "legacy"] = "affine32"  # datasketch permutation family (see minhash.py)
    seed: int = bounded(1, ge=0, lt=SEED_LIMIT)      # datasketch MinHash seed of the permutations
    word_ngram: int = bounded(5, ge=1, le=64)        # words per shingle in spaced scripts
    char_ngram: int = bounded(5, ge=1, le=64)        # characters per shingle in unspaced scripts (CJK, Thai…)
    unspaced_share: float = bounded(0.3, gt=0.0, le=1.0)  # share of unspaced-script characters → char n-grams
    exact: bool = True                               # drop exact duplicates (normalized text hash) first
    verify: bool = True                              # keep only candidate pairs whose true Jaccard >= threshold
    bucket_window: int = bounded(64, ge=1)           # pair each doc with this many next docs of its LSH bucket
    sample_clusters: int = bounded(20, ge=0)         # clusters shown in reports/clusters_sample.json
    sample_chars: int = bounded(300, ge=10)          # characters of each text shown there

    def __post_init__(self) -> None:
        if (self.bands is None) != (self.rows is None):
            raise ConfigError(f"dedup.bands and dedup.rows: set both or neither, got bands={self.bands}, "
                              f"rows={self.rows}")
        if self.bands is not None and self.bands * self.rows > self.num_perm:
            raise ConfigError(f"dedup.bands × dedup.rows = {self.bands * self.rows} exceeds "
                              f"dedup.num_perm = {self.num_perm}")
