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
# How the down projection starts (the up projection is zero either way, so the adapter starts as the identity):
# "near_identity": N(0, 1e-3) as in Houlsby et al.'s code; "kaiming" (the default): nn.Linear's own uniform
# init, the scale LoRA gives its A matrix, so the up projection's first updates already see a full-size
# signal. Measured better in short fine-tuning runs (pipeline.finetune.config.FinetuneConfig.adapter_init).
INITS = ("near_identity", "kaiming")


class Adapter(nn.Module):
    def __init__(self, n_embd: int, bottleneck: int, init: str = "kaiming") -> None:
        super().__init__()
        if init not in INITS:
            raise ValueError(f"Adapter: init={init!r}; allowed {INITS}")
        self.down = nn.Linear(n_embd, bottleneck)
        self.up = nn.Linear(bottleneck, n_embd)
        if init == "near_identity":
            nn.init.normal_(self.down.weight, mean=0.0, std=1e-3)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.up(F.gelu(self.down(x)))  # (B, T, C)


def apply_adapters(
    module: nn.Module, bottleneck: int = 64, where: Iterable[str] = PLACES, init: str = "kaiming"
) -> list[str]:
    """Insert an adapter after the attention and/or MLP sub-layer of every `Block` inside
    `module` (``init``: one of `INITS`). Returns the names of the new adapter modules."""
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
            adapter = Adapter(ref.numel(), bottleneck, init).to(device=ref.device, dtype=ref.dtype)
            setattr(block, f"adapter_{place}", adapter)
            added.append(f"{name}.adapter_{place}" if name else f"adapter_{place}")
    if not added:
        raise ValueError("apply_adapters: the module contains no transformer Block")
    return added


def mark_only_adapters_trainable(module: nn.Module, keep: Iterable[str] = ()) -> None:
    """Freeze everything except adapter parameters and those under the `keep` module paths
    (pass keep=("head",) to train a task head too)."""
    train_only(module, lambda name: ".adapter_" in name or name.startswith("adapter_"), keep)
