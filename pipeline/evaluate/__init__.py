"""Evaluate stage: one report of what the pipeline produced.

The stage code, with its heavy imports, lives in ``stage.py`` and loads on first use of ``run``, so that reading configs and computing stage keys stays cheap.
"""
from pipeline.lazy import stage_exports
from pipeline.evaluate.config import EvaluateConfig

VERSION = "1"
__all__ = ["VERSION", "EvaluateConfig", "run"]
__getattr__ = stage_exports(__name__, {'run', 'resolve_texts'})
