"""Use a fine-tuned task model: label texts (classification, text pairs) or tag their words (tagging).

Which model: a run's folder (``<finetune_out>/runs/<task>/<run>``, or its ``model/``), a task's folder of runs
(``runs/<task>``), a finetune output (the task's best run in it), or by default the newest published finetune
output that holds the task. The best run is the pretrained run (not a from-scratch baseline) with the best
validation score on its task's selection metric (``result.json``'s ``metric``; the lowest loss when that is
``loss``), ties to the earlier method and seed: the checkpoint that early stopping kept, as evaluate scores it.
A run folder's files are checked against the digests its run wrote (``run_files.json``) before use.

Inputs are encoded as in training (the model's tokenizer, layout and ``max_len``; longer ones are cut and
marked ``truncated``; a tagging input's words past the cut are tagged ``O``, from ``first_cut_word`` on). A
tagging input is split into words on whitespace unless it comes as ``tokens``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Iterator

TASK_CLASSES = ("SequenceClassifier", "TokenClassifier")
PAIR = "pair_classification"


def _meta(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None


def _score(result: dict[str, Any]) -> float:
    from pipeline.finetune.trainer import LOWER_IS_BETTER
    metric = result.get("metric", "accuracy")
    value = result["best"].get(metric, math.nan)
    return -value if metric in LOWER_IS_BETTER else value


def best_run(runs: list[dict[str, Any]], task: str | None, where: Path) -> dict[str, Any]:
    """The run ``predict`` uses among ``runs`` (``result.json`` dicts with ``run_dir``); ``task`` may be None
    when they hold one task only."""
    tasks = sorted({r["task"] for r in runs})
    if task is None:
        if len(tasks) != 1:
            raise ValueError(f"{where} holds the tasks {', '.join(tasks) or '(none)'}: name one with --task")
        task = tasks[0]
    mine = [r for r in runs if r["task"] == task]
    if not mine:
        raise ValueError(f"--task: got {task!r}, allowed: {', '.join(tasks) or '(no task)'} (the tasks in {where})")
    pretrained = [r for r in mine if r["init"] == "pretrained"]
    if not pretrained:
        raise ValueError(f"{where}: task {task!r} has no run from the pretrained model, only baselines")
    scores = [_score(r) for r in pretrained]
    best = max(range(len(pretrained)), key=lambda i: (-math.inf if math.isnan(scores[i]) else scores[i], -i))
    return pretrained[best]


def latest_output(work: Path, task: str | None, notes: list[str] | None = None) -> Path:
    """The newest published finetune output (with ``task``, when given) under ``work/finetune``. A damaged one is
    not used: ``notes`` gets a line naming it, since it may be newer than the one chosen."""
    from pipeline.finetune.results import list_runs
    from pipeline.store import validate
    found, tasks, damaged = [], set(), []
    for folder in (work / "finetune").glob("*"):
        m, why = validate(folder)
        if m is None:
            if not folder.name.endswith(".partial") and (folder / "runs").is_dir():
                damaged.append(f"{folder} ({why})")
            continue
        have = {r["task"] for r in list_runs(folder)}
        tasks |= have
        if task is None or task in have:
            found.append((m.created, folder))
    if found:
        chosen = max(found)[1]
        if notes is not None and damaged:
            notes.append(f"not used, as damaged (lmforge run rebuilds it): {'; '.join(damaged)}; using {chosen}")
        return chosen
    hint = f"; not used, as damaged: {'; '.join(damaged)} (lmforge run rebuilds it)" if damaged else ""
    if tasks:
        raise ValueError(f"--task: got {task!r}, allowed: {', '.join(sorted(tasks))} (the tasks fine-tuned in "
                         f"{work / 'finetune'}){hint}")
    raise FileNotFoundError(f"no fine-tuned model in {work / 'finetune'}; run: lmforge run --until finetune{hint}")


def _check_run(run_dir: Path) -> None:
    """A run folder's files against the digests its run listed (``reuse.run_damage``); a copied model folder
    without them is used as it is."""
    from pipeline.finetune.reuse import RUN_FILES, RUN_KEY, run_damage
    if (run_dir / RUN_FILES).is_file() and (run_dir / RUN_KEY).is_file():
        why = run_damage(run_dir, (run_dir / RUN_KEY).read_text().strip())
        if why:
            raise ValueError(f"--model: {run_dir} is damaged: {why} (lmforge run trains it again)")


def resolve(path: Path | None, task: str | None, work: Path,
            notes: list[str] | None = None) -> tuple[Path, dict[str, Any]]:
    """(the task model's folder, what is known of its run: ``result.json``, else its meta) for ``--model`` ``path``
    (None: the newest finetune output, ``latest_output``, which may add to ``notes``) and ``--task``."""
    from pipeline.finetune.results import list_runs
    path = latest_output(work, task, notes) if path is None else Path(path)
    if not path.exists():
        raise FileNotFoundError(f"--model: {path} does not exist")
    for folder in (path, path / "model"):
        meta = _meta(folder)
        if meta is None:
            continue
        if meta.get("model_class") not in TASK_CLASSES:
            raise ValueError(f"--model: {folder} holds a pretrained {meta.get('model_class')}, not a fine-tuned task "
                             "model (lmforge generate and fill-mask use pretrained models)")
        if task is not None and meta.get("task") != task:
            raise ValueError(f"--task: got {task!r}, but {folder} is a model of task {meta.get('task')!r}")
        _check_run(folder.parent)
        result = folder.parent / "result.json"
        return folder, json.loads(result.read_text()) if result.is_file() else meta
    if (path / "runs").is_dir():
        runs = list_runs(path)
    else:  # a task's folder of runs
        runs = [{**json.loads(p.read_text()), "run_dir": str(p.parent)} for p in sorted(path.glob("*/result.json"))]
    if not runs:
        raise FileNotFoundError(f"--model: no task model in {path} (expected a fine-tuned run's folder, its model/, "
                                "a task's runs/<task> folder or a finetune output: data/work/finetune/<key>)")
    chosen = best_run(runs, task, path)
    _check_run(Path(chosen["run_dir"]))
    return Path(chosen["run_dir"]) / "model", chosen


def waiting_lines(fd: int, size: int = 65536) -> Iterator[bytes | None]:
    """The lines of a pipe or terminal (``fd``) as they come, and None whenever no more input is waiting: the
    caller's cue to answer what it has (``lmforge predict --file -`` behind ``tail -f``, or typed lines)."""
    import os
    import select
    buf = b""
    while True:
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            yield line + b"\n"
        if not select.select([fd], [], [], 0)[0]:
            yield None
        data = os.read(fd, size)  # (blocks until input comes, or the writer closes)
        if not data:
            if buf:
                yield buf
            return
        buf += data


def _no_surrogates(text: str, where: str) -> str:
    if any("\ud800" <= c <= "\udfff" for c in text):  # undecodable bytes as Python keeps them, or JSON's lone halves
        raise ValueError(f"{where}: not UTF-8 text (a lone surrogate or undecodable byte)")
    return text


def read_inputs(texts: Iterable[str], lines: Iterable[bytes | None], source: str, kind: str, jsonl: bool,
                blank: list[int] | None = None) -> Iterator[dict[str, Any] | None]:
    """Examples from command-line ``texts`` (each marked ``argument``: its number), then the ``lines`` (bytes) of
    ``source`` (a file, or stdin), each marked ``line``: JSON Lines when ``jsonl`` (objects with ``text``, plus
    ``text_pair`` for a pair task, or ``tokens``, a list of words, for tagging), else one text a line (a pair
    task's two texts separated by one tab). UTF-8, a leading byte-order mark dropped. Blank lines are skipped
    (their count added to ``blank[0]``, when given); anything else that does not fit is an error naming it. A None
    among the lines (``waiting_lines``: no more input waiting) is passed on as None."""
    for n, text in enumerate(texts, 1):
        yield {**_example(_no_surrogates(text, f"argument {n}"), kind, f"argument {n}"), "argument": n}
    n = 0
    for raw in lines:
        if raw is None:
            yield None
            continue
        n += 1
        where = f"{source} line {n}"
        try:
            line = raw.decode("utf-8").removesuffix("\n").removesuffix("\r")
        except UnicodeDecodeError as e:
            raise ValueError(f"{where}: not UTF-8 text ({e.reason} at byte {e.start} of the line)") from None
        if n == 1:
            line = line.removeprefix("\ufeff")
        if not line.strip():
            if blank is not None:
                blank[0] += 1
            continue
        ex = _json_example(line, kind, where) if jsonl else _example(line, kind, where)
        yield {**ex, "line": n}


def _example(text: str, kind: str, where: str) -> dict[str, Any]:
    if kind != PAIR:
        if not text.strip():
            raise ValueError(f"{where}: an empty text")
        return {"text": text}
    parts = text.split("\t")
    if len(parts) != 2 or not all(p.strip() for p in parts):
        raise ValueError(f"{where}: a pair task takes two non-empty texts separated by one tab, got {len(parts)} "
                         "part(s)")
    return {"text": parts[0], "text_pair": parts[1]}


def _json_example(line: str, kind: str, where: str) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: not JSON ({e.msg})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected an object with \"text\", got {type(obj).__name__}")
    for key in ("text", "text_pair", "tokens"):
        for value in obj.get(key) if isinstance(obj.get(key), list) else [obj.get(key)]:
            if isinstance(value, str):
                _no_surrogates(value, where)
    if "tokens" in obj:
        words = obj["tokens"]
        if kind != "tagging":
            raise ValueError(f"{where}: \"tokens\" is for a tagging task; a {kind} task reads \"text\"")
        if not isinstance(words, list) or not words or not all(isinstance(w, str) and w.strip() for w in words):
            raise ValueError(f"{where}: \"tokens\" must be a non-empty list of non-empty strings")
        return {"tokens": words, "text": " ".join(words)}
    if not isinstance(obj.get("text"), str) or not obj["text"].strip():
        raise ValueError(f"{where}: no \"text\" (a non-empty string)" + (" or \"tokens\"" if kind == "tagging" else ""))
    if (kind == PAIR) != ("text_pair" in obj):
        raise ValueError(f"{where}: a pair task needs \"text_pair\" (a string) too" if kind == PAIR else
                         f"{where}: \"text_pair\" is for a pair task; this is a {kind} task")
    if kind == PAIR and (not isinstance(obj["text_pair"], str) or not obj["text_pair"].strip()):
        raise ValueError(f"{where}: \"text_pair\" must be a non-empty string")
    return {"text": obj["text"], **({"text_pair": obj["text_pair"]} if kind == PAIR else {})}


class Predictor:
    """A task model loaded once (``folder``: a task model's folder), applied to batches of examples."""

    def __init__(self, folder: Path, batch_size: int = 64) -> None:
        from pipeline.finetune.modeling import load_with_tokenizer
        self.model, self.meta, self.tok, self.pad_id = load_with_tokenizer(folder)
        self.labels, self.kind, self.batch_size = self.meta["labels"], self.meta["kind"], batch_size
        self.folder = folder

    def __call__(self, examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Per example, with its ``argument`` / ``line`` mark: classification ``label``, ``probability`` and
        ``probabilities`` (every label); tagging ``tokens``, ``tags``, ``tag_probabilities`` and ``spans`` (type,
        first word, last word, text). Both mark ``truncated``; tagging adds ``first_cut_word`` (None, or the
        first word cut off: it and those after it are tagged ``O``)."""
        import torch

        from pipeline.finetune.encode import encode
        from pipeline.finetune.scoring import predict
        from pipeline.tasks.metrics import spans
        tagging = self.kind == "tagging"
        for i, ex in enumerate(examples):
            if (self.kind == PAIR) != ("text_pair" in ex) or ("tokens" in ex and not tagging):
                raise ValueError(f"example {i + 1}: a {self.kind} model takes "
                                 + ("text and text_pair" if self.kind == PAIR else "text, or tokens" if tagging
                                    else "text alone"))
        words = [ex.get("tokens") or ex["text"].split() for ex in examples] if tagging else None
        rows = [{**ex, "tokens": w, "tags": ["O"] * len(w)} for ex, w in zip(examples, words)] if tagging else \
            [{**ex, "label": self.labels[0]} for ex in examples]  # (placeholder gold: encode wants one)
        enc = encode(rows, self.kind, self.labels, self.tok, self.meta["arch"], self.meta["max_len"])
        probs: list = []
        with torch.inference_mode():
            preds, _ = predict(self.model, enc, tagging, self.pad_id, self.batch_size, probs=probs)
        if not all(math.isfinite(x) for pr in probs for x in pr):
            raise ValueError(f"{self.folder}: the model gives NaN or infinite scores (damaged weights?)")
        out = []
        for i, (r, p, pr) in enumerate(zip(rows, preds, probs)):
            mark = {k: r[k] for k in ("argument", "line") if k in r}
            if tagging:
                tags = [self.labels[j] for j in p]
                cut = [k for k, f in enumerate(enc.first[i]) if f < 0]
                found = [{"type": t, "first": a, "last": b, "text": " ".join(r["tokens"][a:b + 1])}
                         for t, a, b in spans(tags, self.meta.get("scheme") or "BIO")]
                out.append({**mark, "tokens": r["tokens"], "tags": tags,
                            "tag_probabilities": [None if f < 0 else round(x, 4) for f, x in zip(enc.first[i], pr)],
                            "spans": found, "truncated": i in enc.cut, "first_cut_word": cut[0] if cut else None})
            else:
                out.append({**mark, "text": r["text"], **({"text_pair": r["text_pair"]} if "text_pair" in r else {}),
                            "label": self.labels[p], "probability": round(pr[p], 4),
                            "probabilities": {lab: round(x, 4) for lab, x in zip(self.labels, pr)},
                            "truncated": i in enc.cut})
        return out


def predict_examples(folder: Path, examples: list[dict[str, Any]], batch_size: int = 64) -> list[dict[str, Any]]:
    """``Predictor(folder)(examples)``: one call, one load."""
    return Predictor(folder, batch_size)(examples)


def _one_line(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\r", "\\r").replace("\n", "\\n")


def render(pred: dict[str, Any]) -> str:
    """One prediction as one line: ``label  probability  text`` (tab-separated), or the words with each span
    bracketed and typed. Tabs, newlines and backslashes in a text are escaped (``\\t``, ``\\n``, ``\\\\``)."""
    if "label" in pred:
        text = _one_line(pred["text"]) + (f" | {_one_line(pred['text_pair'])}" if "text_pair" in pred else "")
        return f"{pred['label']}\t{pred['probability']:.3f}\t{text}" + ("  (truncated)" if pred["truncated"] else "")
    words = [_one_line(w) for w in pred["tokens"]]
    for s in reversed(pred["spans"]):
        words[s["first"]:s["last"] + 1] = [f"[{' '.join(words[s['first']:s['last'] + 1])}]{s['type']}"]
    cut = pred["first_cut_word"]
    mark = f"  (truncated: words from {cut + 1} on are tagged O unseen)" if cut is not None else \
        "  (truncated: the last word's later pieces)" if pred["truncated"] else ""
    return " ".join(words) + mark


__all__ = ["resolve", "best_run", "latest_output", "read_inputs", "waiting_lines", "Predictor", "predict_examples",
           "render"]
