"""Multi-head attention through `scaled_dot_product_attention`: self-attention (causal or
bidirectional, with rotary positions or T5's relative position bias, QK-norm and a KV cache) and
cross-attention for enc-dec."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Rotary(nn.Module):
    """Rotary position embedding (RoFormer, GPT-NeoX "rotate half" layout) with cos/sin cached
    for every position up to `max_len`, so a forward pass only slices."""

    def __init__(self, head_dim: int, max_len: int, base: float = 10000.0) -> None:
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        freqs = torch.outer(torch.arange(max_len, dtype=torch.float32), inv_freq)  # (T, D/2)
        # Not persistent: derived from the config, so checkpoints stay weights only.
        self.register_buffer("cos", freqs.cos(), persistent=False)
        self.register_buffer("sin", freqs.sin(), persistent=False)

    def forward(self, start: int, length: int) -> tuple[Tensor, Tensor]:
        return self.cos[start : start + length], self.sin[start : start + length]  # (T, D/2) each


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate pairs (x1[i], x2[i]) of the two halves of the head dimension. x: (B, H, T, D)."""
    x1, x2 = x.chunk(2, dim=-1)  # (B, H, T, D/2) each
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


def relative_buckets(rel: Tensor, bidirectional: bool, num_buckets: int, max_distance: int) -> Tensor:
    """T5's bucket of each relative position ``rel = key - query``: half the buckets (all of them for a
    causal stack, which sees no key ahead) give one bucket per distance up to ``exact``, the rest cover
    distances up to ``max_distance`` in log-spaced buckets, and farther keys share the last; a bidirectional
    stack gives keys ahead of the query the upper half of the buckets."""
    out = torch.zeros_like(rel)
    if bidirectional:
        num_buckets //= 2
        out = out + (rel > 0).long() * num_buckets
        dist = rel.abs()
    else:
        dist = (-rel).clamp(min=0)
    exact = num_buckets // 2
    # (in float64: distances at a bucket's edge, 16 or 32 of 8 exact, give a whole number that float32's log may
    # round either way on another device)
    far = exact + (torch.log(dist.double().clamp(min=1) / exact) / math.log(max_distance / exact)
                   * (num_buckets - exact)).long()
    return out + torch.where(dist < exact, dist, far.clamp(max=num_buckets - 1))


class RelativeBias(nn.Module):
    """T5's relative position bias: a learned scalar per head and relative-position bucket, added to the
    attention logits of every self-attention layer of one stack (the layers share the table). It has no
    length limit of its own; ``block_size`` still bounds the sequence."""

    def __init__(self, n_head: int, bidirectional: bool, num_buckets: int = 32, max_distance: int = 128) -> None:
        super().__init__()
        self.bidirectional, self.num_buckets, self.max_distance = bidirectional, num_buckets, max_distance
        self.bias = nn.Embedding(num_buckets, n_head)

    def forward(self, q_start: int, q_len: int, k_len: int) -> Tensor:
        """The bias for queries at positions ``q_start .. q_start + q_len - 1`` and keys at ``0 .. k_len - 1``
        (a KV-cached step: the cached keys and its own): float (1, H, q_len, k_len)."""
        device = self.bias.weight.device
        q = torch.arange(q_start, q_start + q_len, device=device)[:, None]
        k = torch.arange(k_len, device=device)[None, :]
        buckets = relative_buckets(k - q, self.bidirectional, self.num_buckets, self.max_distance)
        return self.bias(buckets).permute(2, 0, 1).unsqueeze(0)


class LayerKV:
    """Keys and values of one layer for incremental decoding, preallocated to `max_len` so each
    new token is a slice write rather than a growing concatenation."""

    def __init__(self, max_len: int) -> None:
        self.max_len = max_len
        self.length = 0
        self.k: Tensor | None = None
        self.v: Tensor | None = None

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append k, v (B, H, T, D); return all keys and values so far (B, H, length, D)."""
        if self.k is None:
            shape = (k.size(0), k.size(1), self.max_len, k.size(3))
            self.k = k.new_empty(shape)
            self.v = v.new_empty(shape)
        end = self.length + k.size(2)
        if end > self.max_len:
            raise ValueError(f"KV cache overflow: {end} positions > max_len={self.max_len}")
        self.k[:, :, self.length : end] = k
        self.v[:, :, self.length : end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]


class KVCache:
    """One `LayerKV` per block; `length` is the number of positions already cached."""

    def __init__(self, n_layer: int, max_len: int) -> None:
        self.layers = [LayerKV(max_len) for _ in range(n_layer)]

    @property
    def length(self) -> int:
        return self.layers[0].length


class SelfAttention(nn.Module):
    """Fused-QKV multi-head self-attention. `causal` is fixed at build time: decoders are causal,
    encoders bidirectional. Without a padding mask the `is_causal=True` SDPA fast path is used."""

    def __init__(
        self, n_embd: int, n_head: int, *, causal: bool, bias: bool, dropout: float, qk_norm: bool
    ) -> None:
        super().__init__()
        self.n_head, self.head_dim = n_head, n_embd // n_head
        self.causal, self.qk_norm, self.dropout = causal, qk_norm, dropout
        self.qkv = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_drop = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        attn_mask: Tensor | None = None,
        rope: tuple[Tensor, Tensor] | None = None,
        cache: LayerKV | None = None,
    ) -> Tensor:
        """x: (B, T, C); attn_mask: bool (B, 1, T, T) with True = may attend, or a float bias added to the
        logits (B or 1, H or 1, T, keys: a relative position bias, -inf where a query may not attend), already
        combined with causality by the trunk; rope: (cos, sin) for these T positions."""
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, self.head_dim).unbind(2)  # (B, T, H, D)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, H, T, D)
        if self.qk_norm:
            q = F.rms_norm(q, (self.head_dim,))
            k = F.rms_norm(k, (self.head_dim,))
        if rope is not None:
            q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        # A fresh (empty) cache is a normal causal prefill; a filled one is decoding one token,
        # which may attend to every cached position, so no mask is needed.
        decoding = cache is not None and cache.length > 0
        if cache is not None:
            if decoding and T != 1:
                raise ValueError(f"KV-cached decoding takes one token at a time, got T={T}")
            k, v = cache.update(k, v)
        if attn_mask is not None and attn_mask.is_floating_point() and attn_mask.dtype != q.dtype:
            attn_mask = attn_mask.to(q.dtype)  # (autocast: SDPA takes a float mask in the queries' dtype)
        y = F.scaled_dot_product_attention(
            q, k, v,
            attn_mask=attn_mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=self.causal and attn_mask is None and not decoding,
        )  # (B, H, T, D)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_drop(self.proj(y))


class CrossAttention(nn.Module):
    """Decoder-to-encoder attention of an encoder-decoder (no positions: the encoder output
    already carries them)."""

    def __init__(self, n_embd: int, n_head: int, *, bias: bool, dropout: float) -> None:
        super().__init__()
        self.n_head, self.head_dim, self.dropout = n_head, n_embd // n_head, dropout
        self.q = nn.Linear(n_embd, n_embd, bias=bias)
        self.kv = nn.Linear(n_embd, 2 * n_embd, bias=bias)
        self.proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, memory: Tensor, memory_mask: Tensor | None = None) -> Tensor:
        """x: (B, T, C) decoder states; memory: (B, S, C) encoder output; memory_mask: bool
        (B, 1, 1, S), True = real source token."""
        B, T, C = x.shape
        S = memory.size(1)
        q = self.q(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, H, T, D)
        k, v = self.kv(memory).view(B, S, 2, self.n_head, self.head_dim).unbind(2)  # (B, S, H, D)
        k, v = k.transpose(1, 2), v.transpose(1, 2)  # (B, H, S, D)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=memory_mask, dropout_p=self.dropout if self.training else 0.0
        )  # (B, H, T, D)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_drop(self.proj(y))
