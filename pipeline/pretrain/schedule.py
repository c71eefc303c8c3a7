"""Learning-rate schedules: linear warmup, then cosine decay or warmup-stable-decay (WSD)."""
from __future__ import annotations

import math


def lr_at(step: int, *, lr: float, max_steps: int, warmup_steps: int, schedule: str,
          min_lr_ratio: float, decay_frac: float) -> float:
    """The learning rate for optimizer step ``step`` (0-based)."""
    min_lr = lr * min_lr_ratio
    if warmup_steps and step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if schedule == "cosine":  # from lr at the first step after warmup to min_lr at the last (max_steps - 1)
        span = max(1, max_steps - 1 - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / span)
        return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (lr - min_lr)
    decay_start = max(warmup_steps, int(max_steps * (1 - decay_frac)))
    if step < decay_start:
        return lr
    progress = min(1.0, (step - decay_start + 1) / max(1, max_steps - decay_start))
    return lr - progress * (lr - min_lr)
