"""Decontaminate stage: drop the pretraining documents that share a long n-gram with an evaluation text.

The stage code, with its heavy imports, lives in ``stage.py`` and loads on first use of ``run``, so that
reading configs and computing stage keys stays cheap.
"""
from typing import Any

from pipeline.lazy import stage_exports
from pipeline.decontaminate.config import DecontaminateConfig

VERSION = "2"  # 2: simplify folds compatibility forms (NFKD); held-out units only for stdlib documents
REPORT_ONLY = ("sample_docs", "sample_chars")  # changes only reports/ (plan)
__all__ = ["VERSION", "DecontaminateConfig", "run", "section_reads", "data_view"]


def section_reads(cfg: DecontaminateConfig, section: str, tasks: Any) -> tuple[Any, tuple]:
    """The key holds the tasks' evaluation splits only (``cfg.splits``): their settings and their files. A
    task's train file, or ``max_train``, decides no text this stage protects, and changing one must not
    rebuild the pretraining corpus (and pretraining)."""
    from pipeline.tasks.config import view
    return view(tasks, cfg.splits), (tuple(cfg.splits),)


def data_view(conf: dict[str, Any]) -> dict[str, Any]:
    """The stage's key config as far as its kept documents depend on it (the key downstream stages take, ``plan``):
    the tasks without their names and order, and a classification task's label list as a set (a tagging task's
    order counts: integer tags are ids into it). Which documents go depends on the evaluation texts alone;
    renaming a task or reordering the tasks rebuilds this stage (its marks and report name the tasks) but not
    tokenize and pretraining (the tasks' files count in any order: ``tasks.config.fingerprint``)."""
    import json
    sections = conf.get("_sections", {})
    if "tasks" not in sections:
        return conf

    def as_set(t: dict[str, Any], k: str) -> bool:
        return k == "labels" and t[k] is not None and t.get("kind") != "tagging"
    tasks = [{k: sorted(v) if as_set(t, k) else v for k, v in t.items() if k != "name"} for t in sections["tasks"]]
    tasks.sort(key=lambda t: json.dumps(t, sort_keys=True, default=str))
    return {**conf, "_sections": {**sections, "tasks": tasks}}


__getattr__ = stage_exports(__name__, {'run', 'spec_of'})
