"""Decontaminate stage: drop the pretraining documents that share a long n-gram with an evaluation text.

The stage code, with its heavy imports, lives in ``stage.py`` and loads on first use of ``run`` (or any
other name below), so that reading configs and computing stage keys stays cheap.
"""
import importlib

from pipeline.decontaminate.config import DecontaminateConfig

VERSION = "1"
__all__ = ["VERSION", "DecontaminateConfig", "run"]


_FROM_STAGE = {'run', 'spec_of'}


def __getattr__(name: str):
    # Only the stage's own exports: any other lookup (a submodule being imported, say) must not
    # import the stage, which imports those submodules itself.
    if name not in _FROM_STAGE:
        raise AttributeError(f"module 'pipeline.decontaminate' has no attribute {name!r}")
    stage = importlib.import_module("pipeline.decontaminate.stage")
    return getattr(stage, name)
