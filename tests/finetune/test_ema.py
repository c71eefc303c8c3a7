"""finetune.ema: the weight average (trainer.WeightEMA) and what a run scores and keeps with it."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from pipeline.configtypes import ConfigError
from pipeline.configtypes import build as build_config
from pipeline.finetune import trainer
from pipeline.finetune.config import FinetuneConfig

from finetune.toy import build, run_fit


def test_weight_ema_follows_the_warmed_up_recurrence_by_hand():
    lin = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(0.0)
    ema = trainer.WeightEMA(lin, decay=0.5)
    expect = 0.0
    for n, w in enumerate([1.0, 2.0, 4.0, 8.0]):
        with torch.no_grad():
            lin.weight.fill_(w)
        ema.update()
        d = min(0.5, (1 + n) / (10 + n))  # 0.1, 0.1818.., 0.25, 0.3077..
        expect = d * expect + (1 - d) * w
    # by hand: 0.9; 0.1636 + 1.6364 = 1.8; 0.45 + 3 = 3.45; 1.0615 + 5.5385 = 6.6
    assert expect == pytest.approx(6.6, abs=1e-4)
    assert ema.shadow["weight"].item() == pytest.approx(expect, abs=1e-6)


def test_weight_ema_swaps_the_average_in_and_the_live_weights_back():
    lin = nn.Linear(2, 2)
    ema = trainer.WeightEMA(lin, decay=0.9)
    live = {n: p.detach().clone() for n, p in lin.named_parameters()}
    for v in ema.shadow.values():
        v.fill_(3.0)
    with ema.swapped():
        assert all(torch.all(p == 3.0) for p in lin.parameters())
    assert all(torch.equal(p, live[n]) for n, p in lin.named_parameters())


def test_weight_ema_leaves_frozen_weights_as_they_are():
    lin = nn.Linear(2, 2)
    lin.bias.requires_grad_(False)
    ema = trainer.WeightEMA(lin, decay=0.9)
    bias = lin.bias.detach().clone()
    with torch.no_grad():
        lin.weight.add_(1.0)
        lin.bias.add_(1.0)  # moved behind its back: not a trained weight, so not averaged
    ema.update()
    assert torch.equal(ema.shadow["bias"], bias) and not torch.equal(ema.shadow["weight"], lin.weight)


def test_a_run_with_ema_scores_and_keeps_the_average(pretrained_root, data, monkeypatch):
    """The live trajectory is the one without EMA; validation sees the average of it, and the run ends
    holding the average at the best evaluation (here the last one), not the live weights."""
    cfg = FinetuneConfig(epochs=2, batch_size=8, lr=5e-3, head_lr=5e-3, warmup_ratio=0.0, patience=5, ema=0.8)
    scripted = iter([0.1, 0.2])
    monkeypatch.setattr(trainer, "metrics", lambda *a, **k: {"accuracy": next(scripted)})  # best: the last
    lives: list[dict[str, torch.Tensor]] = []
    update = trainer.WeightEMA.update

    def recording(self):
        lives.append({n: p.detach().clone() for n, p in self.model.named_parameters()})
        update(self)

    monkeypatch.setattr(trainer.WeightEMA, "update", recording)
    model = build(pretrained_root, "full", cfg)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    run_fit(model, "full", data, cfg)
    assert len(lives) == 12  # 48 examples / batch 8, 2 epochs
    for name, p in model.named_parameters():
        avg = start[name].clone()
        for n, live in enumerate(lives):
            d = min(0.8, (1 + n) / (10 + n))
            avg = d * avg + (1 - d) * live[name]
        assert torch.allclose(p.detach(), avg, atol=1e-6), name
    assert any(not torch.allclose(p.detach(), lives[-1][n]) for n, p in model.named_parameters())

    scripted = iter([0.1, 0.2])
    monkeypatch.setattr(trainer.WeightEMA, "update", update)
    off = dataclasses.replace(cfg, ema=0.0)
    plain = build(pretrained_root, "full", off)
    run_fit(plain, "full", data, off)
    assert all(torch.allclose(p.detach(), lives[-1][n], atol=1e-6) for n, p in plain.named_parameters())


@pytest.mark.parametrize("bad", [1.0, -0.1])
def test_ema_outside_zero_one_is_a_named_error(bad):
    with pytest.raises(ConfigError, match="ema"):
        build_config(FinetuneConfig, {"ema": bad})
