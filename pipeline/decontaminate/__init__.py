"""Decontaminate stage: drop the pretraining documents that share a long n-gram with an evaluation text.

The stage code, with its heavy imports, lives in ``stage.py`` and loads on first use of ``run``, so that
reading configs and computing stage keys stays cheap.
"""
from pipeline.lazy import stage_exports
from pipeline.decontaminate.config import DecontaminateConfig

VERSION = "2"  # 2: simplify folds compatibility forms (NFKD); held-out units only for stdlib documents
__all__ = ["VERSION", "DecontaminateConfig", "run"]
__getattr__ = stage_exports(__name__, {'run', 'spec_of'})
