"""Fine-tuning gain over scratch, shared by bench/sst2.py, bench/sst2_select.py and bench/conll.py: the FINETUNE
stage on a pretrained model, every run scored on the task's test split, and the medians and gains printed
and recorded the same way.
"""
from __future__ import annotations

import os
import statistics
from pathlib import Path

from bench.pretrained import REPO, say
from pipeline.evaluate.resample import gain_draws, interval, units_of
from pipeline.finetune import FinetuneConfig
from pipeline.finetune import run as finetune_run
from pipeline.finetune.results import list_runs, test_metrics
from pipeline.stage import StageContext
from pipeline.store import Manifest
from pipeline.tasks import TasksConfig

METHODS = ["full", "adapter", "lora"]


def run_stage(root: Path, tasks: TasksConfig, cfg: FinetuneConfig, out: Path) -> None:
    """The FINETUNE stage on the pretrained model in ``root``, writing into ``out``. Runs of ``cfg.threads``
    threads train side by side on the machine's cores (the same results as one at a time)."""
    manifest = Manifest(stage="pretrain", key="bench", version="1", config={}, inputs={}, files={}, path=root)
    ctx = StageContext(name="finetune", key="bench", out=out, inputs={"model": manifest}, root=REPO,
                       extra={"tasks": tasks}, workers=max(1, (os.cpu_count() or 1) // max(1, cfg.threads)))
    finetune_run(cfg, ctx)


def finetune(root: Path, tasks: TasksConfig, cfg: FinetuneConfig, out: Path) -> list[dict]:
    """Run the FINETUNE stage and score every run on the task's test split."""
    run_stage(root, tasks, cfg, out)
    scored = []
    for r in list_runs(out):
        m = test_metrics(Path(r["run_dir"]), tasks)
        scored.append({**{k: r[k] for k in ("task", "method", "init", "seed", "best_epoch", "seconds",
                                             "trainable_params", "total_params")},
                       "val": r["best"], "test": {k: v for k, v in m.items() if isinstance(v, float)},
                       **{k: m[k] for k in ("correct", "span_counts") if k in m}})
    return scored


def bootstrap_gain(scored: list[dict], target_gain: float, resamples: int = 2000, seed: int = 0) -> dict:
    """How much of each method's gain over scratch is the test set's luck (``pipeline.evaluate.resample``):
    the test examples (sentences, for tagging) are resampled with replacement, the same draw for every run,
    and on each draw the gain is recomputed as ``summarize`` computes it, median over seeds of the pretrained
    runs minus that of the scratch runs. Returns per method the 95% interval of the gain (points) and the
    share of draws where it reaches ``target_gain``; {} when a run lacks its per-example counts."""
    units = [units_of(r) for r in scored]
    if not scored or any(u is None for u in units):
        return {}
    by: dict[str, list] = {}
    for r, u in zip(scored, units):
        by.setdefault(f"{r['method']}-{r['init']}", []).append(u)
    out = {}
    for key in sorted(by):
        method, init = key.rsplit("-", 1)
        if init == "pretrained" and "full-scratch" in by:
            gain = 100 * gain_draws(by[key], by["full-scratch"], "median", resamples, seed)
            lo, hi = interval(gain)
            out[method] = {"ci95": [round(lo, 2), round(hi, 2)],
                           "p_reaches_target": round(float((gain >= target_gain - 1e-9).mean()), 3)}
    return out


def summarize(scored: list[dict], metric: str, target_gain: float) -> dict:
    """Median over seeds per (method, init) of the test metric, and each method's gain over scratch.
    ``met``: full fine-tuning's gain reaches the target (the headline); ``met_by_method`` for each.
    ``gain_per_seed``: each seed's pretrained run minus the scratch run of the same seed (the same head
    init and batch order), to show how much of the gain is the seed."""
    by_seed: dict[str, dict[int, float]] = {}
    for r in scored:
        by_seed.setdefault(f"{r['method']}-{r['init']}", {})[r["seed"]] = 100 * r["test"][metric]
    by = {k: [v[seed] for seed in sorted(v)] for k, v in by_seed.items()}
    med = {k: statistics.median(v) for k, v in by.items()}
    base = med["full-scratch"]
    gains = {m: med[f"{m}-pretrained"] - base for m in METHODS if f"{m}-pretrained" in med}
    paired = {m: [v - by_seed["full-scratch"][s] for s, v in sorted(by_seed[f"{m}-pretrained"].items())
                  if s in by_seed["full-scratch"]] for m in gains}
    met = {m: g >= target_gain for m, g in gains.items()}
    return {"median": med, "per_seed": by, "scratch": base, "gain": gains, "gain_per_seed": paired,
            "target": target_gain, "met": met.get("full", False), "met_by_method": met,
            "bootstrap": bootstrap_gain(scored, target_gain) if metric in ("accuracy", "f1") else {}}


def say_summary(summary: dict, metric: str, unit: str) -> None:
    """Print ``summarize``'s medians and gains (the human-readable lines of the fine-tune benches)."""
    for k, v in summary["median"].items():
        say(f"median {metric} {k}: {v:.2f}")
    for m, g in summary["gain"].items():
        seeds_txt = " ".join(f"{x:+.2f}" for x in summary["gain_per_seed"][m])
        say(f"gain of pretrained {m} over scratch: {g:+.2f} {unit} (target >= +{summary['target']:g}); "
            f"per seed {seeds_txt}")
        if m in summary.get("bootstrap", {}):
            b = summary["bootstrap"][m]
            say(f"  test-set resampling ({m}): 95% interval of the gain [{b['ci95'][0]:+.2f}, {b['ci95'][1]:+.2f}], "
                f"reaches the target in {100 * b['p_reaches_target']:.1f}% of draws")


def add_size_args(ap, full_help: str) -> None:
    """``--full`` (the target's run) or ``--quick`` (the default, kept for old commands)."""
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--full", action="store_true", help=full_help)
    size.add_argument("--quick", action="store_true", help="the default: a short check of a few minutes")


def summary_fields(summary: dict, measured: bool = True) -> dict:
    """``summarize``'s figures, rounded, as the fine-tune benches' JSON line holds them; not ``measured`` (the
    short check): ``met`` and ``met_by_method`` are null, the target was not measured (the figures stay)."""
    verdict = {"met": summary["met"], "met_by_method": summary["met_by_method"]} if measured else \
        {"met": None, "met_by_method": None}
    return {
        "figures": {f"{k}_median": round(v, 2) for k, v in summary["median"].items() if k != "full-scratch"},
        "per_seed": {k: [round(x, 2) for x in v] for k, v in summary["per_seed"].items()},
        "gain": {m: round(g, 2) for m, g in summary["gain"].items()},
        "gain_per_seed": {m: [round(x, 2) for x in v] for m, v in summary["gain_per_seed"].items()},
        "targets": {"gain_over_scratch_points": summary["target"]}, **verdict,
        "gain_bootstrap": summary.get("bootstrap", {})}
