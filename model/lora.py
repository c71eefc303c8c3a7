"""LoRA (Hu et al. 2021): a frozen Linear plus a trainable low-rank update (alpha/r) * B @ A, and the
same for a token embedding table (`LoRAEmbedding`, as PEFT's LoRA for ``nn.Embedding``).

`LoRALinear` reuses the wrapped layer's `weight` and `bias` Parameters under the same names, so a
model with LoRA still loads a plain pretrained state dict (only `lora_A`/`lora_B` are new keys),
and `merge_lora` turns it back into plain `nn.Linear` layers with identical outputs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.trainable import train_only

# Fused attention input and output projections: the LoRA paper's best budget use (section 7.1)
# adapts the attention matrices; "mlp.fc" / "mlp.proj" can be added for more capacity.
DEFAULT_TARGETS = ("attn.qkv", "attn.proj")


class LoRALinear(nn.Module):
    ZERO_FACTOR = "lora_B"  # the factor that starts at zero (LoRA+ trains it faster)

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        if r < 1:
            raise ValueError(f"LoRA r={r!r}: must be an int >= 1")
        self.in_features, self.out_features = base.in_features, base.out_features
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        self.weight = base.weight  # the same Parameter: no copy, same state-dict name
        self.bias = base.bias
        dev, dt = base.weight.device, base.weight.dtype
        self.lora_A = nn.Parameter(torch.empty(r, self.in_features, device=dev, dtype=dt))
        # B = 0 makes the update zero at init, so the wrapped model starts exactly at the base.
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, r, device=dev, dtype=dt))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as nn.Linear / PEFT
        self.lora_drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        update = F.linear(F.linear(self.lora_drop(x), self.lora_A), self.lora_B)  # (..., out)
        return F.linear(x, self.weight, self.bias) + self.scaling * update

    def merged_linear(self) -> nn.Linear:
        """A plain Linear whose weight is W + (alpha/r) * B @ A (the base Parameter, updated)."""
        linear = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                           device="meta")
        with torch.no_grad():
            self.weight.add_(self.scaling * (self.lora_B @ self.lora_A))
        linear.weight, linear.bias = self.weight, self.bias
        return linear


class LoRAEmbedding(nn.Module):
    """A frozen ``nn.Embedding`` plus (alpha/r) * (B @ A)^T: row ``t`` moves by (alpha/r) * B @ A[:, t], so
    each token gets its own r numbers (A) in a shared r-dimensional basis (B). As PEFT's embedding LoRA,
    A starts at zero and B at N(0, 1) (the roles swap against ``LoRALinear``, whose input is dense): the
    update is zero at init, and a token's first gradients reach its own column of A at once."""
    ZERO_FACTOR = "lora_A"

    def __init__(self, base: nn.Embedding, r: int, alpha: float) -> None:
        super().__init__()
        if r < 1:
            raise ValueError(f"LoRA r={r!r}: must be an int >= 1")
        self.num_embeddings, self.embedding_dim = base.num_embeddings, base.embedding_dim
        self.padding_idx = base.padding_idx
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        self.weight = base.weight  # the same Parameter: no copy, same state-dict name
        dev, dt = base.weight.device, base.weight.dtype
        self.lora_A = nn.Parameter(torch.zeros(r, self.num_embeddings, device=dev, dtype=dt))
        self.lora_B = nn.Parameter(torch.randn(self.embedding_dim, r, device=dev, dtype=dt))

    def forward(self, idx: Tensor) -> Tensor:
        update = F.embedding(idx, self.lora_A.t()) @ self.lora_B.t()  # (..., r) @ (r, C)
        return F.embedding(idx, self.weight, self.padding_idx) + self.scaling * update

    def table(self) -> Tensor:
        """The effective embedding table W + (alpha/r) * (B @ A)^T, differentiable in the LoRA factors
        (what a tied output projection reads, e.g. an auxiliary LM loss)."""
        return self.weight + self.scaling * (self.lora_B @ self.lora_A).t()

    def merged_embedding(self) -> nn.Embedding:
        """A plain Embedding whose weight is W + (alpha/r) * (B @ A)^T (the base Parameter, updated)."""
        emb = nn.Embedding(self.num_embeddings, self.embedding_dim, padding_idx=self.padding_idx, device="meta")
        with torch.no_grad():
            self.weight.add_(self.scaling * (self.lora_B @ self.lora_A).t())
        emb.weight = self.weight
        return emb


def _matches(name: str, targets: Iterable[str]) -> bool:
    return any(name == t or name.endswith("." + t) for t in targets)


def _set_child(root: nn.Module, name: str, child: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, attr, child)


def _aliases(module: nn.Module, types: tuple[type, ...]) -> list[list[str]]:
    """Every name of each submodule of ``types``, one list per module: a module reachable under several
    names (an encoder-decoder's one token table, ``encoder.wte`` and ``decoder.wte``) has them all."""
    paths: dict[int, list[str]] = {}
    for name, sub in module.named_modules(remove_duplicate=False):
        if isinstance(sub, types):
            paths.setdefault(id(sub), []).append(name)
    return list(paths.values())


def apply_lora(
    module: nn.Module,
    targets: Iterable[str] = DEFAULT_TARGETS,
    r: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.0,
) -> list[str]:
    """Wrap every `nn.Linear` whose dotted name equals a target or ends with "." + target
    (e.g. "qkv", "attn.proj", "mlp.fc") in a `LoRALinear`, and every such `nn.Embedding` (e.g. "wte",
    the token embeddings) in a `LoRAEmbedding` (``dropout`` applies to Linear inputs only). Returns the
    wrapped names; raises if nothing matched, since a typo would otherwise train nothing.

    A module reachable under several names (an encoder-decoder's one token table, ``encoder.wte`` and
    ``decoder.wte``) gets one wrapper under all of them. Refused, since LoRA there would train nothing or
    merge wrongly: a weight tied to another module's (a language model's output layer and its table), and
    a layer whose owner reads its weight instead of calling it (``WEIGHT_READ``: the LM heads)."""
    targets = tuple(targets)
    every = _aliases(module, (nn.Linear, nn.Embedding))
    groups = [names for names in every if any(_matches(n, targets) for n in names)]
    unmatched = [t for t in targets if not any(_matches(n, (t,)) for names in groups for n in names)]
    if unmatched or not groups:
        # a typo would train nothing there; list the names a target may take (block numbers left out)
        allowed = sorted({re.sub(r"^.*\.\d+\.", "", n) for names in every for n in names})
        missing = ", ".join(map(repr, unmatched or targets))
        raise ValueError(f"apply_lora: no nn.Linear or nn.Embedding matches {missing}"
                         f"; allowed: {', '.join(allowed)} (or a suffix of one, e.g. 'proj')")
    weight_read = {f"{n}.{w}" if n else w for n, sub in module.named_modules() for w in getattr(sub, "WEIGHT_READ", ())}
    for names in groups:
        base = module.get_submodule(names[0])
        if weight_read.intersection(names):
            raise ValueError(f"apply_lora: {names[0]} is read by its weight, never called (a language model's "
                             "output layer), so LoRA there would train nothing; target the blocks' projections")
        tied = [n for n, sub in module.named_modules() if sub is not base and any(
            p is base.weight for p in sub.parameters(recurse=False))]
        if tied:  # e.g. a language model's output layer and its table
            raise ValueError(f"apply_lora: {names[0]} shares its weight with {tied}; LoRA on a tied weight would "
                             "leave those unadapted and make merge_lora change them")
        wrapped = (LoRAEmbedding(base, r, alpha) if isinstance(base, nn.Embedding)
                   else LoRALinear(base, r, alpha, dropout))
        for name in names:
            _set_child(module, name, wrapped)
    return [n for names in groups for n in names]


@torch.no_grad()
def merge_lora(module: nn.Module) -> list[str]:
    """Fold each LoRA update into its base weight and put plain `nn.Linear`s back. Returns the
    merged names. Do not merge into a weight that is tied elsewhere (it would change both)."""
    paths = _aliases(module, (LoRALinear, LoRAEmbedding))  # a wrapper under several names is merged once
    for names in paths:
        sub = module.get_submodule(names[0])
        merged = sub.merged_linear() if isinstance(sub, LoRALinear) else sub.merged_embedding()
        for name in names:
            _set_child(module, name, merged)
    return [n for names in paths for n in names]


def mark_only_lora_trainable(module: nn.Module, keep: Iterable[str] = ()) -> None:
    """Freeze everything except LoRA matrices and the parameters under the `keep` module paths
    (pass keep=("head",) to train a task head too)."""
    train_only(module, is_lora_param, keep)


def is_lora_param(name: str) -> bool:
    """Whether a parameter name is one of the LoRA factors ``apply_lora`` adds."""
    return name.rsplit(".", 1)[-1] in ("lora_A", "lora_B")
