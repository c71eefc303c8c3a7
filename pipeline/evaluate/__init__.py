"""Evaluate stage: one report of what the pipeline produced.

The stage code, with its heavy imports, lives in ``stage.py`` and loads on first use of ``run``, so that reading configs and computing stage keys stays cheap.
"""
from pathlib import Path

from pipeline.configtypes import existing_file
from pipeline.evaluate.config import EvaluateConfig
from pipeline.lazy import stage_exports
from pipeline.store import files_fingerprint

VERSION = "2"  # 2: the headline gain's interval from test-set resampling in the report
__all__ = ["VERSION", "EvaluateConfig", "fingerprint", "run"]


def fingerprint(cfg: EvaluateConfig, root: Path) -> str:
    """What the ``extra_texts`` files are now (path, size, mtime): an edited file means a new key.
    A missing one is a ConfigError here, at planning, not when the stage runs at the end of the flow."""
    return files_fingerprint(existing_file(root, p, f"evaluate.extra_texts[{i}]")
                             for i, p in enumerate(cfg.extra_texts))


__getattr__ = stage_exports(__name__, {'run', 'resolve_texts'})
