"""What decontamination must keep out of the pretraining corpus: the tasks' test material.

- ``held_out_units``: for the stdlib-derived tasks, whole units (modules and pydoc topics) are held out
  for test; their ingest documents are ``stdlib_docs:module/<m>`` / ``stdlib_docs:topic/<t>`` (doc meta
  ``{"module": m}`` / ``{"topic": t}``), and ``is_held_out_doc`` tells one from its meta.
- ``test_texts``: every task's test inputs as plain text (tagging: the words joined by spaces), for an
  n-gram overlap check against documents from any source.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from pipeline.tasks.config import TasksConfig
from pipeline.tasks.load import load_task


def held_out_units(tasks_cfg: TasksConfig, root: Path = Path("."), split: str = "test") -> set[str]:
    """Units ("module/<dotted name>", "topic/<name>") that hold a stdlib task's ``split`` examples."""
    units: set[str] = set()
    for cfg in tasks_cfg.tasks:
        if cfg.source != "files":
            units |= {ex["unit"] for ex in load_task(cfg, root).splits[split]}
    return units


def is_held_out_doc(meta: str | dict[str, Any], units: set[str]) -> bool:
    """Does a document (by its ingest meta, a JSON string or dict) belong to a held-out unit?"""
    m = json.loads(meta) if isinstance(meta, str) else meta
    if not isinstance(m, dict):
        return False
    if m.get("kind") == "topic" or "topic" in m:
        return f"topic/{m.get('topic')}" in units
    return "module" in m and f"module/{m['module']}" in units


def test_texts(tasks_cfg: TasksConfig, root: Path = Path(".")) -> Iterator[tuple[str, str]]:
    """(task name, text) for every test example of every task."""
    for cfg in tasks_cfg.tasks:
        for ex in load_task(cfg, root).splits["test"]:
            if "tokens" in ex:
                yield cfg.name, " ".join(ex["tokens"])
            else:
                yield cfg.name, ex["text"]
                if ex.get("text_pair"):
                    yield cfg.name, ex["text_pair"]


__all__ = ["held_out_units", "is_held_out_doc", "test_texts"]
