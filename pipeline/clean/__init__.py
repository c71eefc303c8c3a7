"""Clean: normalize documents, compute quality attributes once (cached), drop by configurable rules.

The stage code, with its heavy imports, lives in ``stage.py`` and loads on first use of ``run`` (or any
other name below), so that reading configs and computing stage keys stays cheap.
"""
import importlib

from pipeline.clean.config import CleanConfig

VERSION = "1"
__all__ = ["VERSION", "CleanConfig", "run"]


_FROM_STAGE = {'drop_reasons', 'run'}


def __getattr__(name: str):
    # Only the stage's own exports: any other lookup (a submodule being imported, say) must not
    # import the stage, which imports those submodules itself.
    if name not in _FROM_STAGE:
        raise AttributeError(f"module 'pipeline.clean' has no attribute {name!r}")
    stage = importlib.import_module("pipeline.clean.stage")
    return getattr(stage, name)
