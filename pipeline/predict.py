"""Use a fine-tuned task model: label texts (classification, text pairs) or tag their words (tagging).

Which model: a run's folder (``<finetune_out>/runs/<task>/<run>``, or its ``model/``), a finetune output
(the task's best run in it), or by default the newest published finetune output that holds the task. The
best run is the pretrained run (not a from-scratch baseline) with the best validation score on its task's
selection metric (``result.json``'s ``metric``; the lowest loss when that is ``loss``), ties to the earlier
method and seed: the checkpoint that early stopping kept, as the evaluate stage scores it.

Inputs are encoded as in training (the model's tokenizer, layout and ``max_len``; longer ones are cut and
marked ``truncated``). A tagging input is split into words on whitespace unless it comes as ``tokens``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable

TASK_CLASSES = ("SequenceClassifier", "TokenClassifier")


def _is_task_model(folder: Path) -> bool:
    meta = folder / "meta.json"
    return meta.is_file() and json.loads(meta.read_text()).get("model_class") in TASK_CLASSES


def _score(result: dict[str, Any]) -> float:
    metric = result.get("metric", "accuracy")
    value = result["best"].get(metric, math.nan)
    return -value if metric == "loss" else value


def best_run(runs: list[dict[str, Any]], task: str | None, where: Path) -> dict[str, Any]:
    """The run ``predict`` uses among a finetune output's ``runs`` (``list_runs``); ``task`` may be None
    when the output holds one task only."""
    tasks = sorted({r["task"] for r in runs})
    if task is None:
        if len(tasks) != 1:
            raise ValueError(f"{where} holds the tasks {', '.join(tasks) or '(none)'}: name one with --task")
        task = tasks[0]
    mine = [r for r in runs if r["task"] == task]
    if not mine:
        raise ValueError(f"--task: got {task!r}, allowed: {', '.join(tasks) or '(no task)'} (the tasks in {where})")
    pretrained = [r for r in mine if r["init"] == "pretrained"] or mine
    scored = [r for r in pretrained if not math.isnan(_score(r))] or pretrained
    return max(scored, key=lambda r: (_score(r) if not math.isnan(_score(r)) else -math.inf,
                                      -scored.index(r)))


def latest_output(work: Path, task: str | None) -> Path:
    """The newest published finetune output (with ``task``, when given) under ``work/finetune``."""
    from pipeline.finetune.results import list_runs
    from pipeline.store import validate
    found, tasks = [], set()
    for folder in (work / "finetune").glob("*"):
        m, _ = validate(folder)
        if m is None:
            continue
        have = {r["task"] for r in list_runs(folder)}
        tasks |= have
        if task is None or task in have:
            found.append((m.created, folder))
    if not found and tasks:
        raise ValueError(f"--task: got {task!r}, allowed: {', '.join(sorted(tasks))} (the tasks fine-tuned in "
                         f"{work / 'finetune'})")
    if not found:
        raise FileNotFoundError(f"no fine-tuned model in {work / 'finetune'}; run: lmforge run --until finetune")
    return max(found)[1]


def resolve(path: Path | None, task: str | None, work: Path) -> tuple[Path, dict[str, Any] | None]:
    """(the task model's folder, the chosen run's result or None) for ``--model`` ``path`` (None: the
    newest finetune output, ``latest_output``) and ``--task``."""
    from pipeline.finetune.results import list_runs
    if path is None:
        path = latest_output(work, task)
    path = Path(path)
    for folder in (path, path / "model"):
        if _is_task_model(folder):
            result = folder.parent / "result.json"
            chosen = json.loads(result.read_text()) if result.is_file() else None
            if task is not None and chosen is not None and chosen["task"] != task:
                raise ValueError(f"--task: got {task!r}, but {folder} is a model of task {chosen['task']!r}")
            return folder, chosen
    runs = list_runs(path) if (path / "runs").is_dir() else []
    if not runs:
        raise FileNotFoundError(f"--model: no task model in {path} (expected a fine-tuned run's folder, its model/, "
                                "or a finetune output: data/work/finetune/<key>)")
    chosen = best_run(runs, task, path)
    return Path(chosen["run_dir"]) / "model", chosen


def read_inputs(texts: Iterable[str], lines: Iterable[str], source: str, pair: bool, jsonl: bool
                ) -> list[dict[str, Any]]:
    """Examples from command-line ``texts`` and the ``lines`` of ``source`` (a file or stdin): JSON Lines
    (``jsonl``: objects with ``text``, ``text_pair`` for a pair task, or ``tokens`` for tagging), else one
    text a line (a pair task: the two texts separated by a tab). Blank lines are skipped."""
    out = []
    for t in texts:
        out.append(_example(t, pair, "the command line"))
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{source} line {n}"
        if jsonl:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: not JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{where}: expected an object with \"text\", got {type(obj).__name__}")
            if isinstance(obj.get("tokens"), list) and obj["tokens"] and all(isinstance(w, str) for w in obj["tokens"]):
                out.append({"tokens": obj["tokens"], "text": " ".join(obj["tokens"])})
                continue
            if not isinstance(obj.get("text"), str) or not obj["text"].strip():
                raise ValueError(f"{where}: no \"text\" (a non-empty string) or \"tokens\" (a list of words)")
            if pair and not isinstance(obj.get("text_pair"), str):
                raise ValueError(f"{where}: a pair task needs \"text_pair\" (a string) too")
            out.append({"text": obj["text"], **({"text_pair": obj["text_pair"]} if pair else {})})
        else:
            out.append(_example(line.rstrip("\r\n"), pair, where))
    if not out:
        raise ValueError("nothing to predict: give texts, or --file with one text a line")
    return out


def _example(text: str, pair: bool, where: str) -> dict[str, Any]:
    if not pair:
        return {"text": text}
    first, tab, second = text.partition("\t")
    if not tab:
        raise ValueError(f"{where}: a pair task takes two texts separated by a tab")
    return {"text": first, "text_pair": second}


def predict_examples(folder: Path, examples: list[dict[str, Any]], batch_size: int = 64) -> list[dict[str, Any]]:
    """Per example: classification ``label``, ``probability`` and ``probabilities`` (every label); tagging
    ``tokens``, ``tags``, ``tag_probabilities`` and ``spans`` (type, first word, last word, text). Both mark
    ``truncated`` (tagging: the words past ``max_len`` are predicted ``O``)."""
    import torch

    from pipeline.finetune import modeling
    from pipeline.finetune.encode import encode
    from pipeline.finetune.scoring import predict
    from pipeline.tasks.metrics import spans
    from pipeline.tokenize.tokenizer import Tokenizer

    model, _, meta = modeling.load(folder)
    tok = Tokenizer.from_dir(folder)
    labels, kind = meta["labels"], meta["kind"]
    tagging = kind == "tagging"
    rows = [{**ex, "tokens": ex.get("tokens") or ex["text"].split(), "tags": None} if tagging else
            {**ex, "label": labels[0]} for ex in examples]
    for r in rows:
        if tagging:
            r["tags"] = ["O"] * len(r["tokens"])
    empty = [i for i, r in enumerate(rows) if tagging and not r["tokens"]]
    if empty:
        raise ValueError(f"input {empty[0] + 1}: no words to tag")
    enc = encode(rows, kind, labels, tok, meta["arch"], meta["max_len"])
    probs: list = []
    with torch.inference_mode():
        preds, _ = predict(model, enc, tagging, tok.pad_id if tok.pad_id is not None else 0, batch_size,
                           probs=probs)
    out = []
    for i, (r, p, pr) in enumerate(zip(rows, preds, probs)):
        cut = i in enc.cut
        if tagging:
            tags = [labels[j] for j in p]
            found = [{"type": t, "first": a, "last": b, "text": " ".join(r["tokens"][a:b + 1])}
                     for t, a, b in spans(tags, meta.get("scheme") or "BIO")]
            out.append({"tokens": r["tokens"], "tags": tags, "tag_probabilities": [round(x, 4) for x in pr],
                        "spans": found, "truncated": cut})
        else:
            out.append({"text": r["text"], **({"text_pair": r["text_pair"]} if "text_pair" in r else {}),
                        "label": labels[p], "probability": round(pr[p], 4),
                        "probabilities": {lab: round(x, 4) for lab, x in zip(labels, pr)}, "truncated": cut})
    return out


def render(pred: dict[str, Any]) -> str:
    """One prediction as a line: ``label  probability  text``, or the words with each span bracketed and typed."""
    mark = "  (truncated)" if pred["truncated"] else ""
    if "label" in pred:
        text = pred["text"] + (f" | {pred['text_pair']}" if "text_pair" in pred else "")
        return f"{pred['label']}\t{pred['probability']:.3f}\t{text}{mark}"
    words = list(pred["tokens"])
    for s in reversed(pred["spans"]):
        words[s["first"]:s["last"] + 1] = [f"[{s['text']}]{s['type']}"]
    return " ".join(words) + mark


__all__ = ["resolve", "best_run", "latest_output", "read_inputs", "predict_examples", "render"]
