"""The gain from pretraining over seeds, and the report's tables."""
from __future__ import annotations

import statistics

import numpy as np
import pytest

from pipeline.evaluate.report import markdown
from pipeline.evaluate.resample import gain_draws, metric_draws, units_of
from pipeline.evaluate.scores import gains, mean_std


def row(task, method, init, seed, **m):
    kind = "tagging" if "f1" in m and "accuracy" not in m else "classification"
    return {"task": task, "kind": kind, "method": method, "init": init, "seed": seed, "n_test": 10, **m}


PRE = [0.80, 0.84, 0.83]
SCR = [0.70, 0.71, 0.75]
ROWS = ([row("sst", "full", "pretrained", s, accuracy=a, macro_f1=a - 0.01) for s, a in enumerate(PRE)]
        + [row("sst", "full", "scratch", s, accuracy=a, macro_f1=a - 0.02) for s, a in enumerate(SCR)]
        + [row("ner", "lora", "pretrained", 0, f1=0.6, precision=0.5, recall=0.75)]
        + [row("ner", "full", "scratch", 0, f1=0.4, precision=0.4, recall=0.4)])


def test_gain_is_pretrained_minus_scratch_with_mean_and_std_over_seeds():
    g = {(r["task"], r["method"], r["metric"]): r for r in gains(ROWS)}
    acc = g[("sst", "full", "accuracy")]
    assert acc["pretrained_mean"] == pytest.approx(statistics.fmean(PRE))
    assert acc["pretrained_std"] == pytest.approx(statistics.stdev(PRE))
    assert acc["scratch_mean"] == pytest.approx(statistics.fmean(SCR))
    assert acc["gain_mean"] == pytest.approx(statistics.fmean(PRE) - statistics.fmean(SCR))
    assert acc["gain_std"] == pytest.approx(statistics.stdev([p - s for p, s in zip(PRE, SCR)]))
    assert acc["paired_seeds"] == [0, 1, 2]
    f1 = g[("sst", "full", "macro_f1")]
    assert f1["gain_mean"] == pytest.approx(statistics.fmean(PRE) - statistics.fmean(SCR) + 0.01)
    assert acc["baseline"] == "full-scratch"
    # LoRA has no scratch run of its own: its baseline is full fine-tuning from scratch (single seed: no std).
    lora = g[("ner", "lora", "f1")]
    assert lora["baseline"] == "full-scratch" and lora["gain_mean"] == pytest.approx(0.6 - 0.4)
    assert lora["gain_std"] is None and lora["pretrained_std"] is None and lora["paired_seeds"] == [0]
    assert g[("ner", "lora", "recall")]["gain_mean"] == pytest.approx(0.35)
    assert sorted(k for k in g if k[0] == "ner") == [("ner", "lora", m) for m in ("f1", "precision", "recall")]


def test_unpaired_seeds_fall_back_to_the_difference_of_means():
    rows = [row("t", "full", "pretrained", 1, accuracy=0.9, macro_f1=0.9),
            row("t", "full", "pretrained", 2, accuracy=0.8, macro_f1=0.8),
            row("t", "full", "scratch", 3, accuracy=0.5, macro_f1=0.5)]
    (acc, _) = gains(rows)
    assert acc["gain_mean"] == pytest.approx(0.85 - 0.5) and acc["gain_std"] is None and acc["paired_seeds"] == []
    assert mean_std([]) == (None, None) and mean_std([2.0]) == (2.0, None)


def test_report_has_a_row_per_run_and_the_gain_table():
    report = {
        "provenance": {"artifacts": [{"what": "corpus", "stage": "decontaminate", "key": "c0ffee", "note": "docs: d"},
                                     {"what": "pretrained model", "stage": "pretrain", "key": "beef", "note": ""}]},
        "decontamination": {"docs_in": 100, "docs_removed": 7, "removed_by_task": {"sst": 7}, "eval_texts": 604,
                            "eval_texts_unprotected": 232, "min_words": 8, "min_chars": 20},
        "lm": {"objective": "causal", "bpb_gain_over_unigram": 1.25, "rows": [
            {"data": "validation split", "scorer": "pretrained model", "tokens": 10, "bytes": 40, "loss": 2.0,
             "ppl": 7.389, "bpb": 0.7213},
            {"data": "validation split", "scorer": "unigram baseline", "tokens": 10, "bytes": 40, "loss": 5.5,
             "ppl": 244.7, "bpb": 1.9713}]},
        "runs": ROWS, "gains": gains(ROWS)}
    md = markdown(report)
    run_rows = [ln for ln in md.splitlines() if ln.startswith("| sst |") or ln.startswith("| ner |")]
    assert len([r for r in run_rows if r.count("|") == 13]) == len(ROWS)  # the per-run table
    assert "| sst | full | pretrained | 1 | 10 | 0.8400 | 0.8300 | — | — | — | — | — |" in md
    # what a run trained and where it peaked; a two-stage run names its second stage
    two = {**ROWS[0], "method": "two_stage", "then": "lora", "trainable_params": 16904, "trainable_share": 0.0934,
           "best_epoch": 2.0}
    row = "| sst | two_stage → lora | pretrained | 0 | 10 | 0.8000 | 0.7900 | — | — | — | 16,904 (9.3%) | 2 |"
    two_md = markdown({**report, "runs": [two, *ROWS[3:6]], "gains": gains([two, *ROWS[3:6]])})
    assert row in two_md and "| sst | two_stage → lora | accuracy | 0.8000 | full-scratch |" in two_md
    gain = statistics.fmean(PRE) - statistics.fmean(SCR)
    std = statistics.stdev([p - s for p, s in zip(PRE, SCR)])
    assert (f"| sst | full | accuracy | 0.8233 ± 0.0208 | full-scratch | 0.7200 ± 0.0265 | {gain:.4f} ± {std:.4f} "
            "| — | 0, 1, 2 |") in md  # no per-example counts given: no interval
    assert "`c0ffee`" in md and "`beef`" in md and "removed **7** of 100" in md
    # what it could not protect: short evaluation texts (SST-2's phrases) match no n-gram
    assert ("several tasks). 232 of the 604 evaluation texts (under 8 words, or 20 characters in scripts written "
            "without spaces) protect nothing: a corpus document holding one of them is kept.") in md
    assert "| validation split | unigram baseline | 10 | 40 | 5.5000 | 244.7000 | 1.9713 |" in md
    assert "pretrained model: **1.2500** bits per byte" in md


def test_a_pipe_in_a_task_name_does_not_shift_the_table_columns():
    from pipeline.evaluate.report import table
    lines = table(["task", "accuracy"], [["a|b", 0.5]])
    assert lines[-1] == "| a\\|b | 0.5000 |"
    assert lines[-1].replace("\\|", "").count("|") == lines[0].count("|")


def test_gain_interval_from_paired_test_resampling():
    """Seed s of the pretrained run is right on the first 80 + s of 100 examples, the scratch run on the first
    70 + s: on every draw pretrained is right wherever scratch is, so the gain stays within [0, 0.2]."""
    units = {("sst", "full", init, s): [[int(i < base + s)] for i in range(100)]
             for init, base in (("pretrained", 80), ("scratch", 70)) for s in range(3)}
    rows = [row("sst", "full", init, s, accuracy=(base + s) / 100, macro_f1=0.5)
            for init, base in (("pretrained", 80), ("scratch", 70)) for s in range(3)]
    acc, f1 = gains(rows, units)
    assert acc["metric"] == "accuracy" and acc["gain_mean"] == pytest.approx(0.10)
    lo, hi = acc["gain_ci95"]
    assert 0.0 < lo < 0.10 < hi < 0.2 and gains(rows, units) == [acc, f1]  # deterministic
    assert f1["gain_ci95"] is None  # only the headline metric gets one
    del units[("sst", "full", "scratch", 2)]
    assert gains(rows, units)[0]["gain_ci95"] is None  # a run without counts: no interval
    md = markdown({"provenance": {"artifacts": []}, "decontamination": None,
                   "lm": {"objective": "causal", "rows": []}, "runs": rows, "gains": [acc, f1]})
    assert f"| 0.1000 ± 0.0000 | [{lo:.4f}, {hi:.4f}] | 0, 1, 2 |" in md


def test_resampled_metrics_by_hand():
    weights = np.array([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])  # three draws of 3 examples
    assert metric_draws([[1], [0], [1]], weights).tolist() == pytest.approx([1.0, 0.5, 2 / 3])
    # span F1 from (correct, predicted, gold): 2 * 2 / (3 + 2) on example 0 alone
    spans = [[2, 3, 2], [0, 1, 0], [1, 1, 1]]
    assert metric_draws(spans, weights).tolist() == pytest.approx([0.8, 2 * 0.5 / (1 + 0.5), 2 * 3 / (5 + 3)])
    assert units_of({"correct": [1, 0]}) == [[1], [0]] and units_of({"f1": 0.5}) is None
    same = [[1], [0], [1], [1]]
    assert not gain_draws([same], [same], resamples=50).any()  # paired: equal runs never differ
    with pytest.raises(ValueError, match="different sizes"):
        gain_draws([same], [same[:3]])
    with pytest.raises(ValueError, match="correct, predicted, gold"):
        metric_draws([[1, 2]], weights[:, :1])


def test_a_gain_that_rounds_to_zero_is_not_shown_negative():
    from pipeline.evaluate.report import fmt, pm
    assert [fmt(-0.00001), fmt(-0.0), fmt(-0.00006), fmt(0.0), fmt(-0.4, 0)] == ["0.0000", "0.0000", "-0.0001",
                                                                                  "0.0000", "0"]
    assert pm(-1e-17, 0.1131) == "0.0000 ± 0.1131"
