"""What decontamination must keep out of the pretraining corpus: the tasks' test material.

- ``held_out_units``: for the stdlib-derived tasks, whole units (modules and pydoc topics) are held out
  for test; their ingest documents are ``stdlib_docs:module/<m>`` / ``stdlib_docs:topic/<t>`` (doc meta
  ``{"kind": "module", "module": m}`` / ``{"kind": "topic", "topic": t}``), and ``doc_unit`` tells
  one from its meta.
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


STDLIB_KINDS = ("topic", "module", "source")  # the ``kind`` meta of pipeline.ingest.stdlib's documents


def doc_unit(meta: str | dict[str, Any] | None) -> str | None:
    """The stdlib unit of an ingest document ("module/<m>" or "topic/<t>", from its meta: JSON or a dict).

    Only documents of the stdlib sources have one: their meta has a stdlib ``kind`` and no ``file``, which
    every file reader writes last (a user's JSONL field ``module``, ``topic`` or ``file`` cannot fake it)."""
    if isinstance(meta, dict):
        m = meta
    elif not meta or ('"module"' not in meta and '"topic"' not in meta):  # skip the JSON parse for most docs
        return None
    else:
        try:
            m = json.loads(meta)
        except ValueError:
            return None
    if not isinstance(m, dict) or "file" in m or m.get("kind") not in STDLIB_KINDS:
        return None
    if "topic" in m:
        return f"topic/{m['topic']}"
    return f"module/{m['module']}" if "module" in m else None


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


__all__ = ["doc_unit", "held_out_units", "test_texts"]
