"""The FINETUNE stage body: tasks to files, then every (task, method, init, seed) run; see the package
docstring for the output layout."""
from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from model import load_config, trainable_summary
from pipeline.finetune import modeling
from pipeline.finetune.config import FinetuneConfig
from pipeline.finetune.encode import Encoded, encode
from pipeline.finetune.reports import write_run_reports
from pipeline.finetune.scoring import metrics, predict
from pipeline.finetune.trainer import fit
from pipeline.pretrain.runtime import pick_device
from pipeline.stage import StageContext
from pipeline.store import atomic_write_text
from pipeline.tasks import SPLITS, TaskData, TasksConfig, load_task
from pipeline.tokenize.tokenizer import MODEL_FILE, Tokenizer


def run_name(method: str, init: str, seed: int) -> str:
    return f"{method}-{init}-s{seed}"


def run_specs(cfg: FinetuneConfig) -> list[tuple[str, str, int]]:
    """(method, init, seed): every method from the pretrained model, and (``baseline``) full
    fine-tuning from random init, the honest no-pretraining baseline (a frozen random trunk under
    LoRA or adapters would be a strawman)."""
    specs = [(m, "pretrained", s) for m in cfg.methods for s in cfg.seeds]
    if cfg.baseline:
        specs += [("full", "scratch", s) for s in cfg.seeds]
    return specs


def write_task_files(out: Path, data: TaskData) -> None:
    folder = out / "tasks" / data.name
    folder.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        lines = "".join(json.dumps(ex, ensure_ascii=False) + "\n" for ex in data.splits[split])
        atomic_write_text(folder / f"{split}.jsonl", lines)
    atomic_write_text(folder / "labels.json", json.dumps(
        {"task": data.name, "kind": data.kind, "labels": data.labels, "scheme": data.scheme}, indent=1))
    atomic_write_text(folder / "drops.json", json.dumps(data.drops_report(), indent=1, ensure_ascii=False))


def tokenizer_file(model_dir: Path) -> Path:
    for p in (model_dir / "tokenizer" / MODEL_FILE, model_dir / MODEL_FILE):
        if p.is_file():
            return p
    raise FileNotFoundError(f"no tokenizer in {model_dir} (expected tokenizer/{MODEL_FILE})")


def one_run(ctx: StageContext, cfg: FinetuneConfig, data: TaskData, enc: dict[str, Encoded], model_dir: Path,
            tok: Tokenizer, method: str, init: str, seed: int, device: torch.device, max_len: int) -> dict[str, Any]:
    """Train one run, save its best model and reports, return its result (also written as result.json)."""
    t0 = time.perf_counter()
    name = run_name(method, init, seed)
    mcfg = load_config(model_dir)
    pad_id = tok.pad_id if tok.pad_id is not None else 0
    model = modeling.build(data.kind, len(data.labels), mcfg, model_dir if init == "pretrained" else None,
                           cfg.pooling, cfg.dropout, seed)
    last = cfg.then if method == "two_stage" else method
    extra = modeling.add_method_modules(model, last, cfg)
    prefix = f"{data.name}.{name}."
    fitted = fit(model, method, enc["train"], data.splits["validation"], enc["validation"], data.labels, data.kind,
                 data.scheme, cfg, seed, pad_id, device,
                 log=lambda m, step: ctx.tracker.log_metrics({prefix + k: v for k, v in m.items()}, step=step),
                 label=f"finetune {data.name} {name}")
    trainable, total = trainable_summary(model)
    preds, _ = predict(model, enc["validation"], data.kind == "tagging", pad_id, cfg.eval_batch_size, device)
    detail = metrics(data.splits["validation"], preds, data.labels, data.kind, data.scheme, detail=True)
    run_dir = ctx.out / "runs" / data.name / name
    tmp = run_dir.with_name(f".{name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    meta = {"task": data.name, "kind": data.kind, "labels": data.labels, "scheme": data.scheme, "arch": mcfg.arch,
            "max_len": max_len, "method": method, "init": init, "seed": seed, **extra}
    modeling.save(model.cpu(), mcfg, tmp / "model", tokenizer_file(model_dir), meta)
    result = {
        "task": data.name, "kind": data.kind, "method": method, "init": init, "seed": seed,
        "metric": cfg.metric_for(data.kind), "best_epoch": fitted.best_epoch, "best_step": fitted.best_step,
        "best": {k: float(v) for k, v in fitted.best.items()}, "curves": fitted.curves, "steps": fitted.steps,
        "stopped_early": fitted.stopped_early, "trainable_params": trainable, "total_params": total,
        "trainable_share": trainable / total, "labels": data.labels, "scheme": data.scheme, "max_len": max_len,
        "n_train": len(enc["train"]), "n_validation": len(enc["validation"]),
        "truncated": {s: e.truncated for s, e in enc.items()}, "seconds": round(time.perf_counter() - t0, 3),
    }
    atomic_write_text(tmp / "result.json", json.dumps(result, indent=1))
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, run_dir)
    write_run_reports(ctx.reports, data.name, name, data.kind, data.labels, detail)
    ctx.tracker.log_metrics({prefix + "best_epoch": fitted.best_epoch, prefix + "trainable_params": trainable,
                             prefix + "trainable_share": trainable / total,
                             **{prefix + "best_val_" + k: float(v) for k, v in fitted.best.items()}})
    return result


def run_stage(cfg: FinetuneConfig, ctx: StageContext) -> dict[str, Any]:
    tasks_cfg: TasksConfig = ctx.extra.get("tasks") or TasksConfig()
    model_dir = ctx.input("model").path / "model"
    tok = Tokenizer.from_dir(model_dir)
    mcfg = load_config(model_dir)
    max_len = min(cfg.max_len, mcfg.block_size)
    device = pick_device(cfg.device)
    if device.type == "cpu":
        torch.set_num_threads(cfg.threads or max(1, os.cpu_count() or 1))
    stats: dict[str, Any] = {"max_len": max_len, "runs": 0, "runs_resumed": 0}
    for tcfg in tasks_cfg.tasks:
        data = load_task(tcfg, ctx.root, cache_dir=ctx.work / "_cache")
        write_task_files(ctx.out, data)
        enc = {s: encode(data.splits[s], data.kind, data.labels, tok, mcfg.arch, max_len) for s in ("train", "validation")}
        t = data.name
        stats.update({f"{t}.n_{s}": len(data.splits[s]) for s in SPLITS})
        stats.update({f"{t}.truncated_{s}": e.truncated for s, e in enc.items()})
        stats[f"{t}.n_labels"] = len(data.labels)
        stats[f"{t}.dropped"] = len(data.drops)
        stats.update({f"{t}.dropped.{r}": n for r, n in data.drop_counts().items()})
        metric = cfg.metric_for(data.kind)
        by_run: dict[tuple[str, str], list[float]] = {}
        for method, init, seed in run_specs(cfg):
            done = ctx.out / "runs" / t / run_name(method, init, seed) / "result.json"
            if done.exists():  # finished before a kill: keep it
                result = json.loads(done.read_text())
                stats["runs_resumed"] += 1
            else:
                result = one_run(ctx, cfg, data, enc, model_dir, tok, method, init, seed, device, max_len)
            stats["runs"] += 1
            key = f"{t}.{method}.{init}.s{seed}"
            stats[f"{key}.val_{metric}"] = result["best"][metric]
            stats[f"{key}.best_epoch"] = result["best_epoch"]
            stats[f"{key}.trainable_params"] = result["trainable_params"]
            by_run.setdefault((method, init), []).append(result["best"][metric])
        stats.update(_gains(t, metric, by_run))
    ctx.tracker.flush()
    ctx.write_report("summary.json", stats)
    return stats


def _gains(task: str, metric: str, by_run: dict[tuple[str, str], list[float]]) -> dict[str, float]:
    """Median over seeds per method, and each pretrained method's gain over the scratch baseline."""
    out = {f"{task}.{m}.{i}.median_val_{metric}": statistics.median(v) for (m, i), v in by_run.items()}
    base = by_run.get(("full", "scratch"))
    if base:
        for (m, i), v in by_run.items():
            if i == "pretrained":
                out[f"{task}.{m}.val_gain_over_scratch"] = statistics.median(v) - statistics.median(base)
    return out


__all__ = ["run_stage", "run_specs", "run_name", "write_task_files", "one_run", "tokenizer_file"]
