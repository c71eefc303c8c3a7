"""Decoder-only language model (GPT): next-token loss and sampling with a KV cache."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.config import ModelConfig
from model.layers import token_loss, vocab_logits
from model.transformer import Transformer


class CausalLM(nn.Module):
    """A causal `Transformer` plus a linear LM head (tied to the token embedding by default)."""

    WEIGHT_READ = ("lm_head",)  # read as a weight (vocab_logits), never called: model.lora refuses it

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.arch != "decoder":
            raise ValueError(f"CausalLM needs ModelConfig.arch='decoder', got arch={cfg.arch!r}")
        self.vocab_size = cfg.vocab_size
        self.transformer = Transformer(cfg, causal=True)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.padded_vocab, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.transformer.wte.weight
        else:
            nn.init.normal_(self.lm_head.weight, mean=0.0, std=0.02)

    def forward(
        self, idx: Tensor, targets: Tensor | None = None, attention_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """idx, targets: (B, T); targets equal to -100 are ignored. Returns logits (B, T, vocab_size)
        and the mean cross-entropy over the non-ignored targets (None without targets)."""
        h = self.transformer.forward_hidden(idx, attention_mask)  # (B, T, C)
        logits = vocab_logits(h, self.lm_head.weight, None, self.vocab_size)  # (B, T, V_padded)
        loss = None if targets is None else token_loss(logits, targets)
        return logits[..., : self.vocab_size], loss

    @torch.no_grad()
    def generate(
        self,
        idx: Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        *,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Append `max_new_tokens` sampled tokens to idx (B, T) and return (B, T + max_new_tokens).

        temperature <= 0 means greedy. The KV cache makes each new token cost one position; once
        the window reaches block_size the context is cropped to the last block_size tokens and
        recomputed every step (what nanoGPT does), so cached and uncached outputs are identical."""
        was_training = self.training
        self.eval()
        trunk, block_size = self.transformer, self.transformer.block_size
        cache = trunk.new_cache() if use_cache else None
        pending = idx[:, -block_size:]  # tokens the cache has not seen yet
        for _ in range(max_new_tokens):
            if cache is None or cache.length + pending.size(1) > block_size:
                cache = trunk.new_cache() if use_cache else None
                pending = idx[:, -block_size:]
            h = trunk.forward_hidden(pending, cache=cache)[:, -1]  # (B, C)
            logits = vocab_logits(h, self.lm_head.weight, None, self.vocab_size)[:, : self.vocab_size]
            next_id = sample_next(logits, temperature, top_k, generator)  # (B, 1)
            idx = torch.cat((idx, next_id), dim=1)
            pending = next_id
        self.train(was_training)
        return idx


def sample_next(
    logits: Tensor, temperature: float, top_k: int | None, generator: torch.Generator | None = None
) -> Tensor:
    """logits (B, V) -> token ids (B, 1)."""
    if temperature <= 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = F.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator)
