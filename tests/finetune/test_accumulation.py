"""Gradient accumulation: a step's gradient is the mean over its own micro-batches, an epoch's short last step
too (a reviewer found it divided by grad_accum: a quarter-size step for a group of one of four)."""
from __future__ import annotations

import dataclasses

import torch

from pipeline.finetune import trainer
from pipeline.finetune.config import FinetuneConfig

from finetune.toy import build, run_fit


def test_an_epochs_short_last_step_is_a_mean_not_a_fraction(pretrained_root, data, monkeypatch):
    # 48 examples in batches of 10: 5 micro-batches an epoch, in steps of 4 and 1; every micro-batch is the same
    # rows and the lr is tiny, so every step's gradient is (nearly) the same
    monkeypatch.setattr(trainer, "train_batches", lambda lengths, size, seed, epoch: [list(range(10))] * 5)
    norms: list[float] = []
    clip = torch.nn.utils.clip_grad_norm_

    def recording(params, max_norm, *a, **k):
        params = list(params)
        norms.append(float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))))
        return clip(params, max_norm, *a, **k)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", recording)
    cfg = dataclasses.replace(FinetuneConfig(), batch_size=10, grad_accum=4, epochs=1, lr=1e-9, head_lr=1e-9,
                              warmup_ratio=0.0, grad_clip=1e9)
    run_fit(build(pretrained_root, "full", cfg), "full", data, cfg)
    assert len(norms) == 2
    assert abs(norms[1] / norms[0] - 1) < 1e-3  # was 0.25: the one micro-batch divided by grad_accum
