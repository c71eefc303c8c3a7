"""Reading a finetune stage output back: the runs it made and their scores on the test split.

The evaluate stage calls these; they need only the stage's folder (layout in ``pipeline.finetune``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def list_runs(finetune_out: Path) -> list[dict[str, Any]]:
    """Every run's ``result.json`` under ``<finetune_out>/runs/<task>/<run>/``, in task, method, init,
    seed order, each with ``run_dir`` (its folder, a str) added. A published output: the runs its manifest
    lists (a run folder copied in afterwards is not one of them)."""
    from pipeline.store import listed_files
    out = []
    for path in listed_files(Path(finetune_out), "runs/*/*/result.json"):
        result = json.loads(path.read_text())
        result["run_dir"] = str(path.parent)
        out.append(result)
    return sorted(out, key=lambda r: (r["task"], r["method"], r["init"], r["seed"]))


def test_metrics(run_dir: Path, tasks_cfg) -> dict[str, Any]:
    """Load a fine-tuned run's best model (``run_dir/model``) and score its task's TEST split.

    ``run_dir`` is ``<finetune_out>/runs/<task>/<method>-<init>-s<seed>``; the test examples are the
    normalized ``<finetune_out>/tasks/<task>/test.jsonl`` the stage wrote (the same rows the task config
    gives), tokenized with the tokenizer saved in the model folder, truncated as in training.
    ``tasks_cfg`` (a ``TasksConfig``) supplies the task's kind and tagging scheme.

    Returns ``{"task", "kind", "method", "init", "seed", "n_test", "truncated", "labels"}`` plus, for
    classification, ``accuracy`` and ``macro_f1`` (and ``per_label``); for tagging, the entity-level
    ``precision``, ``recall``, ``f1`` (CoNLL definition, ``per_type`` too), ``macro_f1`` over entity
    types and token ``accuracy``. Also the mean test ``loss``. Per test example, in file order, for paired
    resampling of the test set (pipeline.evaluate.resample): ``correct`` (1 or 0) for classification,
    ``span_counts`` ((correct, predicted, gold) chunks, ``pipeline.tasks.metrics.span_counts``) for tagging.
    """
    from pipeline.finetune import modeling
    from pipeline.finetune.encode import encode
    from pipeline.finetune.scoring import metrics, predict
    from pipeline.tasks.metrics import span_counts

    run_dir = Path(run_dir)
    result = json.loads((run_dir / "result.json").read_text())
    task = tasks_cfg.get(result["task"]) if tasks_cfg is not None else None
    examples = read_jsonl(run_dir.parents[2] / "tasks" / result["task"] / "test.jsonl")
    model, meta, tok, pad_id = modeling.load_with_tokenizer(run_dir / "model")
    labels, kind = meta["labels"], meta["kind"]
    scheme = meta.get("scheme") or (task.scheme if task is not None and task.scheme != "auto" else None)
    enc = encode(examples, kind, labels, tok, meta["arch"], meta["max_len"])
    preds, loss = predict(model, enc, kind == "tagging", pad_id, batch_size=64)
    out = {k: result[k] for k in ("task", "kind", "method", "init", "seed")}
    out.update(n_test=len(examples), truncated=enc.truncated, loss=loss, labels=labels)
    out.update(metrics(examples, preds, labels, kind, scheme, detail=True))
    if kind == "tagging":
        pred_tags = [[labels[j] for j in p] for p in preds]
        out["span_counts"] = span_counts([ex["tags"] for ex in examples], pred_tags, scheme or "BIO")
    else:
        out["correct"] = [int(ex["label"] == labels[p]) for ex, p in zip(examples, preds)]
    return out


test_metrics.__test__ = False  # not a pytest test, though its name starts with "test"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
