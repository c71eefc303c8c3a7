"""AdamW with the usual decay split (nanoGPT `configure_optimizers`), for the model's parameters.

Weight decay applies to matrices (embeddings, Linear weights) and never to biases or norm gains.
Only parameters with requires_grad are handed to the optimizer, so LoRA / adapter runs optimise
just their trainable part.
"""

from __future__ import annotations

import torch
from torch import nn


def param_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    params = [p for p in module.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def build_adamw(
    module: nn.Module,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.95),
    weight_decay: float = 0.1,
    eps: float = 1e-8,
    fused: bool | None = None,
) -> torch.optim.AdamW:
    """fused=None picks the fused kernel when every parameter lives on a device that has one
    (CPU and CUDA do in torch >= 2.4): one pass over memory per step instead of a chain of
    per-tensor ops, which matters most for large embeddings on CPU."""
    groups = param_groups(module, weight_decay)
    if fused is None:
        devices = {p.device.type for g in groups for p in g["params"]}
        fused = devices <= {"cpu", "cuda"}
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=fused)
