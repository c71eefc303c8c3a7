"""Per-run reports: a confusion-matrix PNG (classification) and per-label precision/recall/F1 JSON,
both on the validation split with the kept (best) weights; the stage summary's validation gains."""
from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from pipeline.store import atomic_write_text


def confusion_png(confusion: list[list[int]], labels: list[str], path: Path, title: str) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cm = np.asarray(confusion)
    size = max(3.5, 0.55 * len(labels) + 1.5)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(title, fontsize=9)
    top = cm.max() if cm.size else 0
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if top and cm[i, j] > top / 2 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_run_reports(reports: Path, task: str, run: str, kind: str, labels: list[str], detail: dict[str, Any],
                      split: str = "validation") -> list[Path]:
    """``reports/<task>/<run>.per_label.json`` and, for classification, ``<run>.confusion.png``: the scores
    of one run on ``split`` (the fine-tune stage's on validation, the evaluate stage's on test, named
    ``<run>.test.*``)."""
    folder = reports / task
    folder.mkdir(parents=True, exist_ok=True)
    table = detail.get("per_type") if kind == "tagging" else detail.get("per_label")
    body = {"task": task, "run": run, "split": split, "kind": kind,
            "level": "entity" if kind == "tagging" else "class", "per_label": table,
            **{k: v for k, v in detail.items() if k not in _NOT_IN_REPORT}}
    names = report_files(kind, run, split)
    out = [folder / names[0]]
    atomic_write_text(out[0], json.dumps(body, indent=1))
    if kind != "tagging" and "confusion" in detail:
        out.append(confusion_png(detail["confusion"], labels, folder / names[1], f"{task} {run} ({split})"))
    return out


def report_files(kind: str, run: str, split: str = "validation") -> list[str]:
    """The names of a run's reports in ``reports/<task>/``: the per-label table, and a classification run's
    confusion matrix."""
    stem = run if split == "validation" else f"{run}.{split}"
    return [f"{stem}.per_label.json"] + ([f"{stem}.confusion.png"] if kind != "tagging" else [])


# the table and plot hold these; the per-example lists (for resampling) and the run's identity are elsewhere
_NOT_IN_REPORT = ("per_type", "per_label", "confusion", "correct", "span_counts", "labels", "task", "kind",
                  "method", "init", "seed")


def val_gains(task: str, metric: str, by_run: dict[tuple[str, str], list[float]]) -> dict[str, float]:
    """Median over seeds per method, and each pretrained method's gain over the scratch baseline."""
    out = {f"{task}.{m}.{i}.median_val_{metric}": statistics.median(v) for (m, i), v in by_run.items()}
    base = by_run.get(("full", "scratch"))
    if base:
        for (m, i), v in by_run.items():
            if i == "pretrained":
                out[f"{task}.{m}.val_gain_over_scratch"] = statistics.median(v) - statistics.median(base)
    return out


__all__ = ["confusion_png", "write_run_reports", "report_files", "val_gains"]
