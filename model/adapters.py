"""Houlsby bottleneck adapters (Houlsby et al. 2019): a small residual MLP applied to the output
of a block's attention and/or MLP sub-layer, before it is added to the residual stream, and
optionally to the token embeddings (place "embed", as MAD-X (Pfeiffer et al. 2020) adapts the
embedding output with its invertible adapters; here a plain bottleneck adapter).

The up projection starts at zero, so each adapter is the identity and the adapted model equals
the base model until training moves it. Adapters fill `Block.adapter_attn` / `Block.adapter_mlp`
(and wrap `Transformer.wte` in an `AdaptedEmbedding`), so the base weights keep their names and a
plain checkpoint still loads.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch.nn.functional as F
from torch import Tensor, nn

from model.layers import Block
from model.trainable import train_only
from model.transformer import Transformer

PLACES = ("attn", "mlp", "embed")
DEFAULT_PLACES = ("attn", "mlp")  # Houlsby et al.'s: both sub-layers of every block
# How the down projection starts (the up projection is zero either way, so the adapter starts as the identity):
# "near_identity": N(0, 1e-3) as in Houlsby et al.'s code; "kaiming" (the default): nn.Linear's own uniform
# init, the scale LoRA gives its A matrix, so the up projection's first updates already see a full-size
# signal. Measured better in short fine-tuning runs (pipeline.finetune.config.FinetuneConfig.adapter_init).
INITS = ("near_identity", "kaiming")


# "sequential" (Houlsby): the adapter reads the sub-layer's output, a(h) = h + up(gelu(down(h))); "parallel"
# (He et al. 2022, the scaled parallel adapter): it reads the sub-layer's input n beside it, h + s * up(gelu(down(n))).
FORMS = ("sequential", "parallel")


class Adapter(nn.Module):
    def __init__(self, n_embd: int, bottleneck: int, init: str = "kaiming", form: str = "sequential",
                 scale: float = 1.0) -> None:
        super().__init__()
        if init not in INITS:
            raise ValueError(f"Adapter: init={init!r}; allowed {INITS}")
        if form not in FORMS:
            raise ValueError(f"Adapter: form={form!r}; allowed {FORMS}")
        self.form, self.scale = form, scale
        self.down = nn.Linear(n_embd, bottleneck)
        self.up = nn.Linear(bottleneck, n_embd)
        if init == "near_identity":
            nn.init.normal_(self.down.weight, mean=0.0, std=1e-3)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: Tensor, sublayer_input: Tensor | None = None) -> Tensor:
        """h: the sub-layer's output (B, T, C); sublayer_input: what it read (the parallel form's input)."""
        x = sublayer_input if self.form == "parallel" and sublayer_input is not None else h
        return h + self.scale * self.up(F.gelu(self.down(x)))  # (B, T, C)


class AdaptedEmbedding(nn.Module):
    """A token embedding whose rows pass through an adapter: token t's vector is a(e_t) = e_t +
    up(gelu(down(e_t))). The table keeps its Parameter and state-dict name (``wte.weight``), so an
    output layer tied to it stays tied and a plain checkpoint still loads. There is no sub-layer beside it,
    so both forms read the embedding (the parallel one differs only by its scale)."""

    def __init__(self, base: nn.Embedding, adapter: Adapter) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = base.num_embeddings, base.embedding_dim
        self.padding_idx = base.padding_idx
        self.weight = base.weight
        self.adapter_embed = adapter

    def forward(self, idx: Tensor) -> Tensor:
        return self.adapter_embed(F.embedding(idx, self.weight, self.padding_idx))  # (..., C)

    def table(self) -> Tensor:
        """Every token's adapted vector a(e_t), (V, C): what a tied output projection reads."""
        return self.adapter_embed(self.weight)


def apply_adapters(
    module: nn.Module, bottleneck: int = 64, where: Iterable[str] = DEFAULT_PLACES, init: str = "kaiming",
    form: str = "sequential", scale: float = 1.0,
) -> list[str]:
    """Insert an adapter after the attention and/or MLP sub-layer of every `Block` inside
    `module`, and with "embed" after the token embeddings of every `Transformer` in it (a table
    two stacks share gets one adapter); ``init``: one of `INITS`. Returns the new adapters' names."""
    where = tuple(where)
    unknown = sorted(set(where) - set(PLACES))
    if unknown:
        raise ValueError(f"apply_adapters: where={where!r} has unknown places {unknown}; allowed {PLACES}")
    if bottleneck < 1:
        raise ValueError(f"apply_adapters: bottleneck={bottleneck!r}: must be >= 1")
    added: list[str] = []
    wrapped: dict[int, AdaptedEmbedding] = {}
    for name, sub in list(module.named_modules()):
        prefix = f"{name}." if name else ""
        if isinstance(sub, Block):
            ref = sub.ln_1.weight  # follow the block's device and dtype
            for place in (p for p in where if p != "embed"):
                adapter = Adapter(ref.numel(), bottleneck, init, form, scale).to(device=ref.device, dtype=ref.dtype)
                setattr(sub, f"adapter_{place}", adapter)
                added.append(f"{prefix}adapter_{place}")
        elif "embed" in where and isinstance(sub, Transformer) and isinstance(sub.wte, nn.Embedding):
            if id(sub.wte) not in wrapped:
                w = sub.wte.weight
                adapter = Adapter(w.shape[1], bottleneck, init, form, scale).to(device=w.device, dtype=w.dtype)
                wrapped[id(sub.wte)] = AdaptedEmbedding(sub.wte, adapter)
                added.append(f"{prefix}wte.adapter_embed")
            sub.wte = wrapped[id(sub.wte)]
    if not any(isinstance(m, Block) for m in module.modules()):
        raise ValueError("apply_adapters: the module contains no transformer Block")
    return added


def mark_only_adapters_trainable(module: nn.Module, keep: Iterable[str] = ()) -> None:
    """Freeze everything except adapter parameters and those under the `keep` module paths
    (pass keep=("head",) to train a task head too)."""
    train_only(module, is_adapter_param, keep)


def is_adapter_param(name: str) -> bool:
    """Whether a parameter name belongs to an adapter ``apply_adapters`` inserted."""
    return ".adapter_" in name or name.startswith("adapter_")
