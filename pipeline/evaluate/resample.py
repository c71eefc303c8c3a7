"""Paired resampling of a test set: how much of a gain from pretraining is which examples the test set holds.

Each scored run carries per-example counts that add up to its headline metric (``test_metrics``):
``correct`` (1 or 0 per example) for classification, ``span_counts`` ((correct, predicted, gold) chunks per
sentence) for tagging. A draw resamples the examples with replacement; the same draw applies to every run,
so a pretrained run and its baseline are always compared on the same examples. On each draw the metric of
every run is recomputed from its summed counts (accuracy = correct / n; span F1 = 2 correct / (predicted +
gold)), and the gain is the centre (mean or median) over seeds of the pretrained runs minus that of the
scratch runs. The 2.5 and 97.5 percentiles of the gains are the 95% interval (the percentile bootstrap).
Seeds are not resampled: the interval is the test set's share of the uncertainty; the spread over seeds is
reported next to it.
"""
from __future__ import annotations

from typing import Any, Literal, Sequence

import numpy as np

RESAMPLES = 2000
Units = Sequence[Sequence[int]]  # per example: (correct,) or (correct, predicted, gold)


def units_of(scored: dict[str, Any]) -> list[list[int]] | None:
    """A scored run's per-example counts (``test_metrics``' ``correct`` or ``span_counts``), else None."""
    if "correct" in scored:
        return [[int(c)] for c in scored["correct"]]
    if "span_counts" in scored:
        return [list(map(int, c)) for c in scored["span_counts"]]
    return None


def draw_weights(n: int, resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """(resamples, n): how many times each of the n examples is drawn, over n, in each resample."""
    draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    return np.stack([np.bincount(d, minlength=n) for d in draws]).astype(np.float64) / n


def metric_draws(units: Units, weights: np.ndarray) -> np.ndarray:
    """The metric (a fraction) on each draw: accuracy from (correct,), span F1 from (correct, predicted, gold)."""
    arr = np.asarray(units, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] not in (1, 3):
        raise ValueError(f"metric_draws: per-example counts must be (correct,) or (correct, predicted, gold); "
                         f"got shape {arr.shape}")
    sums = weights @ arr
    if arr.shape[1] == 1:
        return sums[:, 0]
    denom = sums[:, 1] + sums[:, 2]
    return np.divide(2 * sums[:, 0], denom, out=np.zeros(len(sums)), where=denom > 0)


def gain_draws(pre: list[Units], scr: list[Units], center: Literal["mean", "median"] = "mean",
               resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """The gain (a fraction) on each draw: centre over seeds of ``pre``'s runs minus that of ``scr``'s."""
    if not pre or not scr:
        raise ValueError("gain_draws: needs at least one pretrained and one scratch run")
    sizes = {len(u) for u in pre + scr}
    if len(sizes) != 1:
        raise ValueError(f"gain_draws: the runs were scored on test sets of different sizes {sorted(sizes)}")
    weights = draw_weights(sizes.pop(), resamples, seed)
    reduce = np.mean if center == "mean" else np.median
    side = [reduce(np.stack([metric_draws(u, weights) for u in runs]), axis=0) for runs in (pre, scr)]
    return side[0] - side[1]


def interval(draws: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    lo, hi = np.percentile(draws, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


__all__ = ["RESAMPLES", "units_of", "draw_weights", "metric_draws", "gain_draws", "interval"]
