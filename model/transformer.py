"""The transformer trunk every model family shares: embeddings, positions, blocks, final norm.

Language-model heads (`CausalLM`, `MaskedLM`, `Seq2SeqLM`) and task heads (`heads.py`) hold a
`Transformer` and call `forward_hidden`; they never reach into its blocks.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from model.attention import CrossAttention, KVCache, RelativeBias, Rotary, SelfAttention
from model.config import ModelConfig
from model.layers import MLP, Block, init_gpt2_, make_norm


def build_block(cfg: ModelConfig, *, causal: bool, cross: bool) -> Block:
    """Turn the config into flat constructor arguments, so layers never read a config."""
    attn = SelfAttention(
        cfg.n_embd, cfg.n_head, causal=causal, bias=cfg.bias, dropout=cfg.dropout, qk_norm=cfg.qk_norm
    )
    mlp = MLP(cfg.n_embd, cfg.mlp_hidden, cfg.mlp, bias=cfg.bias, dropout=cfg.dropout)
    cross_attn = (
        CrossAttention(cfg.n_embd, cfg.n_head, bias=cfg.bias, dropout=cfg.dropout) if cross else None
    )
    return Block(attn, mlp, n_embd=cfg.n_embd, norm=cfg.norm, bias=cfg.bias, cross=cross_attn)


def padding_attn_mask(attention_mask: Tensor, causal: bool) -> Tensor:
    """(B, T) with 1 = real token -> bool (B, 1, T, T), True = query may attend to key.

    Every query may always attend to itself: this changes nothing for real tokens and keeps a
    query with no visible real key (a padding position) from producing NaNs."""
    B, T = attention_mask.shape
    keys = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T)
    eye = torch.eye(T, dtype=torch.bool, device=attention_mask.device)  # (T, T)
    if causal:
        keys = keys & torch.ones(T, T, dtype=torch.bool, device=attention_mask.device).tril()
    return keys | eye  # (B, 1, T, T)


class Transformer(nn.Module):
    """Token embedding -> positions -> `n_layer` pre-norm blocks -> final norm.

    Args:
        cfg: the model's config.
        causal: causal self-attention; default: `cfg.arch == "decoder"`.
        n_layer: number of blocks; default `cfg.n_layer`.
        cross: give each block cross-attention (the decoder of an encoder-decoder).
        wte: share an existing token embedding (encoder-decoder models share one table).
    """

    def __init__(
        self,
        cfg: ModelConfig,
        *,
        causal: bool | None = None,
        n_layer: int | None = None,
        cross: bool = False,
        wte: nn.Embedding | None = None,
    ) -> None:
        super().__init__()
        self.causal = cfg.arch == "decoder" if causal is None else causal
        self.n_layer = cfg.n_layer if n_layer is None else n_layer
        self.n_embd, self.block_size = cfg.n_embd, cfg.block_size
        self.wte = wte if wte is not None else nn.Embedding(cfg.padded_vocab, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd) if cfg.pos == "learned" else None
        self.rotary = Rotary(cfg.head_dim, cfg.block_size) if cfg.pos == "rotary" else None
        self.rel_bias = RelativeBias(cfg.n_head, bidirectional=not self.causal) if cfg.pos == "relative" else None
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(
            build_block(cfg, causal=self.causal, cross=cross) for _ in range(self.n_layer)
        )
        self.ln_f = make_norm(cfg.norm, cfg.n_embd, cfg.bias)
        init_gpt2_(self, self.n_layer)

    def set_dropout(self, p: float) -> None:
        """Every dropout of the trunk (embeddings, attention weights and outputs, MLP) to ``p``: a model
        pretrained with dropout can be fine-tuned without, or the other way round."""
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout={p!r}: must be in [0, 1)")
        for m in self.modules():
            if isinstance(m, nn.Dropout):
                m.p = p
            elif isinstance(m, (SelfAttention, CrossAttention)):
                m.dropout = p

    def new_cache(self) -> KVCache:
        return KVCache(self.n_layer, self.block_size)

    def forward_hidden(
        self,
        idx: Tensor,
        attention_mask: Tensor | None = None,
        *,
        cache: KVCache | None = None,
        memory: Tensor | None = None,
        memory_mask: Tensor | None = None,
    ) -> Tensor:
        """idx: (B, T) token ids; attention_mask: (B, T), 1 = real token, 0 = padding (None: all
        real, which takes the fast path); cache: KV cache for incremental decoding; memory:
        (B, S, C) encoder output with memory_mask (B, S). Returns normed hidden states (B, T, C)."""
        B, T = idx.shape
        start = cache.length if cache is not None else 0
        if start + T > self.block_size:
            raise ValueError(f"sequence of {start + T} positions > block_size={self.block_size}")
        if cache is not None and attention_mask is not None:
            raise ValueError("attention_mask with a KV cache is not supported (decode unpadded rows)")
        x = self.wte(idx)  # (B, T, C)
        if self.wpe is not None:
            pos = torch.arange(start, start + T, dtype=torch.long, device=idx.device)
            x = x + self.wpe(pos)  # (T, C) broadcast over B
        rope = self.rotary(start, T) if self.rotary is not None else None
        x = self.drop(x)
        attn_mask = padding_attn_mask(attention_mask, self.causal) if attention_mask is not None else None
        if self.rel_bias is not None:
            attn_mask = self._with_bias(attn_mask, start, T)
        mem_mask = memory_mask.bool()[:, None, None, :] if memory_mask is not None else None  # (B, 1, 1, S)
        for i, block in enumerate(self.blocks):
            layer_cache = cache.layers[i] if cache is not None else None
            x = block(x, attn_mask, rope, layer_cache, memory, mem_mask)
        return self.ln_f(x)  # (B, T, C)

    def _with_bias(self, mask: Tensor | None, start: int, T: int) -> Tensor:
        """The relative position bias for T queries from position ``start`` (keys: the cached ones and
        these), with what ``mask`` (bool, True = may attend) or causality forbids at -inf."""
        bias = self.rel_bias(start, T, start + T)  # (1, H, T, K)
        if mask is None and self.causal and T > 1:
            q = torch.arange(start, start + T, device=bias.device)[:, None]
            mask = torch.arange(start + T, device=bias.device)[None, :] <= q  # (T, K)
        bias = bias if mask is None else bias.masked_fill(~mask, float("-inf"))
        if torch.is_autocast_enabled(bias.device.type):  # cast once here, not in every layer (each keeps its copy)
            bias = bias.to(torch.get_autocast_dtype(bias.device.type))
        return bias

    def forward(self, idx: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        return self.forward_hidden(idx, attention_mask)
