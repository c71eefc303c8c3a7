"""Blocks shared by every model family: norms, MLPs, the pre-norm transformer Block, GPT-2 init."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.attention import CrossAttention, LayerKV, SelfAttention


def make_norm(kind: str, n_embd: int, bias: bool) -> nn.Module:
    """LayerNorm (eps 1e-5 as GPT-2/nanoGPT, optional bias) or RMSNorm (weight only)."""
    if kind == "layernorm":
        return nn.LayerNorm(n_embd, eps=1e-5, bias=bias)
    if kind == "rmsnorm":
        return nn.RMSNorm(n_embd, eps=1e-6)
    raise ValueError(f"norm={kind!r}: must be one of ('layernorm', 'rmsnorm')")


class MLP(nn.Module):
    """Position-wise feed-forward: `fc` -> activation -> `proj`. For SwiGLU `fc` holds the gate
    and the up projection in one matrix (one matmul instead of two)."""

    def __init__(self, n_embd: int, hidden: int, kind: str, *, bias: bool, dropout: float) -> None:
        super().__init__()
        if kind not in ("gelu", "swiglu", "relu2"):
            raise ValueError(f"mlp={kind!r}: must be one of ('gelu', 'swiglu', 'relu2')")
        self.kind = kind
        self.fc = nn.Linear(n_embd, 2 * hidden if kind == "swiglu" else hidden, bias=bias)
        self.proj = nn.Linear(hidden, n_embd, bias=bias)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        h = self.fc(x)  # (B, T, hidden) or (B, T, 2 * hidden)
        if self.kind == "gelu":
            h = F.gelu(h)  # exact erf GELU, as GPT-2 / nanoGPT's nn.GELU()
        elif self.kind == "relu2":
            h = F.relu(h).square()  # ReLU^2 (Primer; modded-nanogpt)
        else:
            gate, up = h.chunk(2, dim=-1)
            h = F.silu(gate) * up
        return self.drop(self.proj(h))  # (B, T, C)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)) [+ cross(norm(x), memory)] + mlp(norm(x)).

    `adapter_attn` / `adapter_mlp` are empty slots that `model.adapters.apply_adapters` fills with
    Houlsby bottlenecks; keeping them as slots leaves the base weight names unchanged."""

    def __init__(
        self,
        attn: SelfAttention,
        mlp: MLP,
        *,
        n_embd: int,
        norm: str,
        bias: bool,
        cross: CrossAttention | None = None,
    ) -> None:
        super().__init__()
        self.ln_1 = make_norm(norm, n_embd, bias)
        self.attn = attn
        self.ln_c = make_norm(norm, n_embd, bias) if cross is not None else None
        self.cross = cross
        self.ln_2 = make_norm(norm, n_embd, bias)
        self.mlp = mlp
        self.adapter_attn: nn.Module | None = None
        self.adapter_mlp: nn.Module | None = None

    def forward(
        self,
        x: Tensor,
        attn_mask: Tensor | None = None,
        rope: tuple[Tensor, Tensor] | None = None,
        cache: LayerKV | None = None,
        memory: Tensor | None = None,
        memory_mask: Tensor | None = None,
    ) -> Tensor:
        n = self.ln_1(x)
        h = self.attn(n, attn_mask, rope, cache)  # (B, T, C)
        if self.adapter_attn is not None:
            h = self.adapter_attn(h, n)
        x = x + h
        if self.cross is not None:
            if memory is None:
                raise ValueError("a block with cross-attention needs `memory` (the encoder output)")
            x = x + self.cross(self.ln_c(x), memory, memory_mask)
        n = self.ln_2(x)
        h = self.mlp(n)
        if self.adapter_mlp is not None:
            h = self.adapter_mlp(h, n)
        return x + h


RESIDUAL_PROJECTIONS = ("attn.proj.weight", "cross.proj.weight", "mlp.proj.weight")


@torch.no_grad()
def init_gpt2_(module: nn.Module, n_layer: int) -> None:
    """GPT-2 / nanoGPT init: N(0, 0.02) for Linear and Embedding weights, zero biases, and
    N(0, 0.02/sqrt(2 * n_layer)) for projections that write into the residual stream, so the
    residual's variance does not grow with depth (GPT-2 paper, section 2.3)."""
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            nn.init.normal_(sub.weight, mean=0.0, std=0.02)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
        elif isinstance(sub, nn.Embedding):
            nn.init.normal_(sub.weight, mean=0.0, std=0.02)
    for name, p in module.named_parameters():
        if name.endswith(RESIDUAL_PROJECTIONS):
            nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))


IGNORE_INDEX = -100  # cross_entropy's default ignore_index: positions labelled with it add no loss


def token_loss(logits: Tensor, targets: Tensor, weight: Tensor | None = None) -> Tensor:
    """Mean cross-entropy of logits (..., K) against class ids (...), positions at IGNORE_INDEX
    skipped; ``weight`` (K,) weights the classes."""
    return F.cross_entropy(
        logits.reshape(-1, logits.size(-1)), targets.reshape(-1), weight=weight, ignore_index=IGNORE_INDEX
    )


def vocab_logits(h: Tensor, weight: Tensor, bias: Tensor | None, vocab_size: int) -> Tensor:
    """Project hidden states (..., C) to logits (..., V_padded) whose padding columns are -inf.

    The matmul runs at the padded width (a multiple of 64 is the fast shape); -inf in the padding
    columns makes a softmax or loss over the full row equal one over the real vocab. Callers hand
    out `logits[..., :vocab_size]`, a view, after computing the loss on the contiguous tensor."""
    logits = F.linear(h, weight, bias)  # (..., V_padded)
    if logits.size(-1) > vocab_size:
        # In place is safe: the matmul's backward needs its inputs, not its output.
        logits[..., vocab_size:] = float("-inf")
    return logits
