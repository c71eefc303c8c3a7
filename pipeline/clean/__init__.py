"""Clean: normalize documents, compute quality attributes once (cached), drop by configurable rules."""
from pipeline.clean.config import CleanConfig
from pipeline.clean.stage import VERSION, run

__all__ = ["VERSION", "CleanConfig", "run"]
