"""Dedup stage: exact duplicates by hash, then near-duplicates by MinHash LSH with verified Jaccard.

The stage code, with its heavy imports, lives in ``stage.py`` and loads on first use of ``run``, so that
reading configs and computing stage keys stays cheap.
"""
from pipeline.lazy import stage_exports
from pipeline.dedup.config import DedupConfig

VERSION = "2"  # 2: simplify folds compatibility forms (NFKD)
REPORT_ONLY = ("sample_clusters", "sample_chars")  # changes only reports/ (plan)
__all__ = ["VERSION", "DedupConfig", "run"]
__getattr__ = stage_exports(__name__, {'lsh_params', 'run'})
