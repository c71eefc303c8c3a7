"""Houlsby bottleneck adapters (Houlsby et al. 2019): a small residual MLP applied to the output
of a block's attention and/or MLP sub-layer, before it is added to the residual stream.

The up projection starts at zero, so each adapter is the identity and the adapted model equals
the base model until training moves it. Adapters fill `Block.adapter_attn` / `Block.adapter_mlp`,
so the base weights keep their names and a plain checkpoint still loads.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch.nn.functional as F
from torch import Tensor, nn

from model.layers import Block
from model.trainable import train_only

PLACES = ("attn", "mlp")


class Adapter(nn.Module):
    def __init__(self, n_embd: int, bottleneck: int) -> None:
        super().__init__()
        self.down = nn.Linear(n_embd, bottleneck)
        self.up = nn.Linear(bottleneck, n_embd)
        # Near-identity init (paper section 2.1): small down projection, zero up projection.
        nn.init.normal_(self.down.weight, mean=0.0, std=1e-3)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.up(F.gelu(self.down(x)))  # (B, T, C)


def apply_adapters(
    module: nn.Module, bottleneck: int = 64, where: Iterable[str] = PLACES
) -> list[str]:
    """Insert an adapter after the attention and/or MLP sub-layer of every `Block` inside
    `module`. Returns the names of the new adapter modules."""
    where = tuple(where)
    unknown = sorted(set(where) - set(PLACES))
    if unknown:
        raise ValueError(f"apply_adapters: where={where!r} has unknown places {unknown}; allowed {PLACES}")
    if bottleneck < 1:
        raise ValueError(f"apply_adapters: bottleneck={bottleneck!r}: must be >= 1")
    added = []
    for name, block in module.named_modules():
        if not isinstance(block, Block):
            continue
        ref = block.ln_1.weight  # follow the block's device and dtype
        for place in where:
            adapter = Adapter(ref.numel(), bottleneck).to(device=ref.device, dtype=ref.dtype)
            setattr(block, f"adapter_{place}", adapter)
            added.append(f"{name}.adapter_{place}" if name else f"adapter_{place}")
    if not added:
        raise ValueError("apply_adapters: the module contains no transformer Block")
    return added


def mark_only_adapters_trainable(module: nn.Module, keep: Iterable[str] = ()) -> None:
    """Freeze everything except adapter parameters and those under the `keep` module paths
    (pass keep=("head",) to train a task head too)."""
    train_only(module, lambda name: ".adapter_" in name or name.startswith("adapter_"), keep)
