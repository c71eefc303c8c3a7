"""The evaluation material to protect: the chosen splits of every configured task, read by the tasks
package (file tasks and the default stdlib tasks alike).

Two kinds of evidence come out of it: the texts (for the n-gram index) and, for the stdlib-derived tasks,
the held-out units: whole modules and pydoc topics whose examples are all in validation or test. The
ingest documents of such a unit (meta ``module`` / ``topic``) are its source page, so they are dropped even
when every docstring in them is too short to be protected by n-grams.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from pipeline.tasks import TasksConfig, load_task


@dataclass
class EvalSources:
    texts: list[tuple[str, list[str]]]                       # ("task:split", texts) in task, split order
    heldout: dict[str, list[str]] = field(default_factory=dict)  # held-out unit → the "task:split"s it holds


def example_texts(ex: dict[str, Any]) -> list[str]:
    """The input texts of one normalized example (tagging: its words joined by spaces)."""
    if "tokens" in ex:
        return [" ".join(ex["tokens"])]
    return [ex["text"]] + ([ex["text_pair"]] if ex.get("text_pair") else [])


def eval_sources(tasks_cfg: TasksConfig, splits: Sequence[str], root: Path) -> EvalSources:
    texts: list[tuple[str, list[str]]] = []
    units: dict[str, set[str]] = defaultdict(set)
    for cfg in tasks_cfg.tasks:
        data = load_task(cfg, root)
        for split in splits:
            name = f"{cfg.name}:{split}"
            texts.append((name, [t for ex in data.splits[split] for t in example_texts(ex)]))
            for ex in data.splits[split]:
                if ex.get("unit"):
                    units[ex["unit"]].add(name)
    return EvalSources(texts, {u: sorted(v) for u, v in sorted(units.items())})
