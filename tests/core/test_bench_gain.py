"""bench/finetune_gain.py's summary of the fine-tune benches: medians, gains and the paired resampling of
the test set behind the gain's interval."""
from __future__ import annotations

import pytest

from bench.finetune_gain import bootstrap_gain, summarize


def run(method: str, init: str, seed: int, correct: list[int]) -> dict:
    return {"method": method, "init": init, "seed": seed, "correct": correct,
            "test": {"accuracy": sum(correct) / len(correct)}}


def test_identical_runs_gain_exactly_zero_on_every_draw():
    """The draws are paired: the same resampled examples for every run, so equal runs never differ."""
    c = [1, 0, 1, 1, 0, 1, 0, 0, 1, 1] * 5
    scored = [run("full", "pretrained", 0, c), run("full", "scratch", 0, list(c))]
    assert bootstrap_gain(scored, 3.0, resamples=500) == {"full": {"ci95": [0.0, 0.0], "p_reaches_target": 0.0}}


def test_a_sure_gain_and_the_medians_over_seeds():
    # pretrained: right on all 40 examples for seeds 0 and 1, on none for seed 2 -> its median is 100
    # scratch: 20 of 40 for every seed -> its median is that of a resampled half, around 50
    half = [1, 0] * 20
    scored = [run("full", "pretrained", 0, [1] * 40), run("full", "pretrained", 1, [1] * 40),
              run("full", "pretrained", 2, [0] * 40)] + [run("full", "scratch", s, half) for s in range(3)]
    got = bootstrap_gain(scored, 3.0, resamples=1000)["full"]
    lo, hi = got["ci95"]
    assert 25 < lo < 50 < hi < 75 and got["p_reaches_target"] == 1.0
    s = summarize(scored, "accuracy", 3.0)
    assert s["gain"]["full"] == pytest.approx(50.0) and s["met"] and s["bootstrap"]["full"] == got
    from bench.finetune_gain import summary_fields  # the short check measured no target: met is null, not True
    assert summary_fields(s)["met"] is True and summary_fields(s)["met_by_method"] == s["met_by_method"]
    quick = summary_fields(s, measured=False)
    assert (quick["met"], quick["met_by_method"]) == (None, None) and quick["gain"] == summary_fields(s)["gain"]


def test_the_interval_is_deterministic_and_covers_the_observed_gain():
    pre = [1] * 33 + [0] * 17   # 66%
    scr = [1] * 30 + [0] * 20   # 60%, the same examples right and 3 more
    scored = [run("lora", "pretrained", 0, pre), run("full", "scratch", 0, scr)]
    a, b = bootstrap_gain(scored, 3.0), bootstrap_gain(scored, 3.0)
    assert a == b and a["lora"]["ci95"][0] <= 6.0 <= a["lora"]["ci95"][1]
    assert a["lora"]["ci95"][0] >= 0.0  # paired: pretrained is never wrong where scratch is right
    assert 0.5 < a["lora"]["p_reaches_target"] < 1.0


def test_no_interval_without_per_example_scores():
    scored = [{"method": "full", "init": i, "seed": 0, "test": {"f1": 0.5}} for i in ("pretrained", "scratch")]
    assert bootstrap_gain(scored, 3.0) == {}
    assert summarize(scored, "f1", 3.0)["bootstrap"] == {}


def test_span_f1_is_resampled_from_the_sentences_chunk_counts():
    """Tagging: F1 = 2 * correct / (predicted + gold) of the resampled sentences' summed counts."""
    perfect = [[2, 2, 2], [1, 1, 1], [0, 0, 0]] * 10
    half = [[1, 2, 2], [2, 4, 4], [0, 0, 0]] * 10  # half of every sentence's chunks right: F1 1/2 on any draw
    scored = [{"method": "full", "init": i, "seed": 0, "span_counts": c, "test": {"f1": f}}
              for i, c, f in (("pretrained", perfect, 1.0), ("scratch", half, 0.5))]
    got = bootstrap_gain(scored, 3.0, resamples=300)["full"]
    assert got["ci95"] == [pytest.approx(50.0, abs=0.01)] * 2 and got["p_reaches_target"] == 1.0
    assert summarize(scored, "f1", 3.0)["gain"]["full"] == pytest.approx(50.0)
    uneven = [[2, 2, 2], [0, 3, 1]] * 15  # 30 of 60 predicted, 30 of 45 gold: F1 4/7, moving with the draw
    got = bootstrap_gain([{**scored[0], "span_counts": uneven}, scored[1]], 3.0, resamples=500)["full"]
    assert got["ci95"][0] < 100 * 4 / 7 - 50 < got["ci95"][1]
