"""Clean: normalize documents, compute quality attributes once (cached), drop by configurable rules.

The stage code, with its heavy imports, lives in ``stage.py`` and loads on first use of ``run``, so that reading configs and computing stage keys stays cheap.
"""
from pipeline.lazy import stage_exports
from pipeline.clean.config import CleanConfig

VERSION = "2"  # 2: gopher_symbol_ratio as Gopher: hash and ellipsis ratios each against 0.1
REPORT_ONLY = ("samples_per_reason", "sample_chars", "plot")  # changes only reports/ (plan)
__all__ = ["VERSION", "CleanConfig", "run"]
__getattr__ = stage_exports(__name__, {'drop_reasons', 'run'})
