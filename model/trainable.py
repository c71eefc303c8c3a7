"""Which parameters train: the freezing rule LoRA and adapters share, and a count to log."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from torch import nn


def _matches(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def train_only(
    module: nn.Module, is_trainable: Callable[[str], bool], keep: Iterable[str] = ()
) -> None:
    """Set requires_grad on each parameter to `is_trainable(name)` or to whether its name lies
    under one of `keep` (module paths such as "head" that stay trainable, e.g. a task head)."""
    keep = tuple(keep)
    for name, p in module.named_parameters():
        p.requires_grad_(is_trainable(name) or _matches(name, keep))


def trainable_summary(module: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; tied parameters count once."""
    params = list(module.parameters())  # parameters() already yields a shared tensor once
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
