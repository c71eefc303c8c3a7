"""Fine-tuned runs on their test split, and the gain from pretraining.

Every run of the finetune output is scored by ``pipeline.finetune.results.test_metrics``. The pretrained
runs of one task and method are compared with their from-scratch baseline over seeds: the gain is
pretrained minus scratch, per seed when both ran that seed (its mean and standard deviation over those
seeds), else the difference of the two means. Standard deviations are sample ones (n - 1), absent for a
single seed. The headline metric's gain (accuracy; span F1 for tagging) also gets a 95% interval from
paired resampling of the test set (``pipeline.evaluate.resample``), over the same seeds as the gain.
"""
from __future__ import annotations

import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

from pipeline.evaluate.resample import gain_draws, interval, units_of
from pipeline.finetune.reports import write_run_reports
from pipeline.finetune.results import list_runs, test_metrics

# each kind's metrics, its headline first (the one the gain interval is computed for)
METRICS = {"classification": ("accuracy", "macro_f1"), "pair_classification": ("accuracy", "macro_f1"),
           "tagging": ("f1", "precision", "recall")}
RUN_FIELDS = ("task", "kind", "method", "init", "seed")


RunKey = tuple[str, str, str, int]  # task, method, init, seed


def score_runs(finetune_dir: Path, tasks_cfg: Any, units: dict[RunKey, Any] | None = None,
               reports: Path | None = None) -> list[dict[str, Any]]:
    """One row per fine-tuned run: its identity, its test-split size and its headline metrics. ``units``,
    when given, receives each run's per-example counts (``resample.units_of``) for ``gains``' intervals;
    ``reports``, each run's per-label scores and confusion matrix on the test split."""
    rows = []
    for run in list_runs(finetune_dir):
        m = test_metrics(Path(run["run_dir"]), tasks_cfg)
        if reports is not None:
            write_run_reports(reports, run["task"], Path(run["run_dir"]).name, run["kind"], m["labels"], m, "test")
        if units is not None:
            units[(run["task"], run["method"], run["init"], run["seed"])] = units_of(m)
        kind = run["kind"]
        if kind not in METRICS:
            raise ValueError(f"run {run['run_dir']}: unknown task kind {kind!r}; known: {sorted(METRICS)}")
        rows.append({**{k: run[k] for k in RUN_FIELDS}, "n_test": m["n_test"], "test_truncated": m["truncated"],
                     **{k: float(m[k]) for k in METRICS[kind]},
                     "best_epoch": run.get("best_epoch"), "trainable_params": run.get("trainable_params"),
                     "trainable_share": run.get("trainable_share"), "then": run.get("then"),
                     "best_stage": run.get("best_stage")})
    return rows


def mean_std(values: Iterable[float]) -> tuple[float | None, float | None]:
    v = list(values)
    if not v:
        return None, None
    return statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else None


def test_means(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The runs' test metrics by task, method and init, the mean over seeds (the evaluate stage's
    ``test.<task>.<method>.<init>.<metric>`` figures: the report's, sortable in MLflow)."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["task"], r["method"], r["init"])].append(r)
    out: dict[str, Any] = {}
    for (task, method, init), runs in sorted(groups.items()):
        out.setdefault(task, {}).setdefault(method, {})[init] = {
            m: mean_std(r[m] for r in runs)[0] for m in METRICS[runs[0]["kind"]]}
    return out


def gains(rows: list[dict[str, Any]], units: dict[RunKey, Any] | None = None) -> list[dict[str, Any]]:
    """One row per task, pretrained method and metric: mean/std over seeds of the pretrained runs and of
    their baseline, and the gain. The baseline is the same method from scratch when it ran, else full
    fine-tuning from scratch (the finetune stage's baseline for every method: a frozen random trunk under
    LoRA or adapters would be a strawman). ``gain_ci95``: the headline metric's gain interval from
    ``units`` (``score_runs``), None for the other metrics or without the runs' counts."""
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_task[r["task"]].append(r)
    out = []
    for task, runs in sorted(by_task.items()):
        kind = runs[0]["kind"]
        scratch_methods = {r["method"] for r in runs if r["init"] == "scratch"}
        for method in sorted({r["method"] for r in runs if r["init"] == "pretrained"}):
            base = method if method in scratch_methods else "full"
            for metric in METRICS[kind]:
                pre = {r["seed"]: r[metric] for r in runs if r["init"] == "pretrained" and r["method"] == method}
                scr = {r["seed"]: r[metric] for r in runs if r["init"] == "scratch" and r["method"] == base}
                then = next((r.get("then") for r in runs if r["method"] == method and r.get("then")), None)
                row = {"task": task, "kind": kind, "method": method, "then": then, "metric": metric,
                       "baseline": f"{base}-scratch" if scr else None, **_compare(pre, scr)}
                row["gain_ci95"] = (_interval(units, task, method, base, row) if metric == METRICS[kind][0]
                                    else None)
                out.append(row)
    return out


def _interval(units: dict[RunKey, Any] | None, task: str, method: str, base: str,
              row: dict[str, Any]) -> list[float] | None:
    """The gain's 95% interval over test-set resamples, on the seeds the gain was taken over."""
    if not units or row["gain_mean"] is None:
        return None
    pre_seeds = row["paired_seeds"] or row["pretrained_seeds"]
    scr_seeds = row["paired_seeds"] or row["scratch_seeds"]
    pre = [units.get((task, method, "pretrained", s)) for s in pre_seeds]
    scr = [units.get((task, base, "scratch", s)) for s in scr_seeds]
    if any(u is None for u in pre + scr):
        return None
    return list(interval(gain_draws(pre, scr, "mean")))


def _compare(pre: dict[int, float], scr: dict[int, float]) -> dict[str, Any]:
    common = sorted(set(pre) & set(scr))
    p_mean, p_std = mean_std(pre.values())
    s_mean, s_std = mean_std(scr.values())
    if common:
        g_mean, g_std = mean_std(pre[s] - scr[s] for s in common)
    else:
        g_mean = p_mean - s_mean if p_mean is not None and s_mean is not None else None
        g_std = None
    return {"pretrained_mean": p_mean, "pretrained_std": p_std, "pretrained_seeds": sorted(pre),
            "scratch_mean": s_mean, "scratch_std": s_std, "scratch_seeds": sorted(scr),
            "gain_mean": g_mean, "gain_std": g_std, "paired_seeds": common}


def headline(gain_rows: list[dict[str, Any]]) -> dict[str, float]:
    """``gain.<task>.<method>.<metric>`` → mean gain, for the stage's returned figures."""
    return {f"gain.{g['task']}.{g['method']}.{g['metric']}": g["gain_mean"] for g in gain_rows
            if g["gain_mean"] is not None and not math.isnan(g["gain_mean"])}
