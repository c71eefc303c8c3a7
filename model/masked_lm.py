"""Encoder-only masked language model (BERT) with sparse prediction.

Head choice: BERT's transform (dense -> GELU -> norm) then a decoder tied to the token embedding,
plus an output bias when `cfg.bias`. The transform gives the tied decoder its own input space, which
BERT and cramming keep; it costs C*C per predicted token, small next to the C*V decoder.

Sparse prediction (cramming `_forward_sparse`): with labels, the head runs only on positions whose
label is not -100 (about 15-25 % of tokens), which is the same loss for a fraction of the head's
FLOPs and memory.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from model.config import ModelConfig
from model.layers import IGNORE_INDEX, init_gpt2_, make_norm, token_loss, vocab_logits
from model.transformer import Transformer


class MLMHead(nn.Module):
    """dense -> GELU -> norm -> decoder over the padded vocab. `decoder_weight` is the token
    embedding when tied; otherwise the head owns a decoder matrix."""

    WEIGHT_READ = ("decoder",)  # read as a weight (vocab_logits), never called: model.lora refuses it

    def __init__(self, cfg: ModelConfig, decoder_weight: nn.Parameter | None) -> None:
        super().__init__()
        self.vocab_size = cfg.vocab_size
        self.dense = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.norm = make_norm(cfg.norm, cfg.n_embd, cfg.bias)
        self.decoder = nn.Linear(cfg.n_embd, cfg.padded_vocab, bias=cfg.bias)
        init_gpt2_(self, cfg.n_layer)
        if decoder_weight is not None:
            self.decoder.weight = decoder_weight

    def forward(self, h: Tensor) -> Tensor:
        """h: (..., C) -> logits (..., V_padded), padding columns -inf."""
        h = self.norm(F.gelu(self.dense(h)))
        return vocab_logits(h, self.decoder.weight, self.decoder.bias, self.vocab_size)


class MaskedLM(nn.Module):
    """A bidirectional `Transformer` plus an `MLMHead`."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.arch != "encoder":
            raise ValueError(f"MaskedLM needs ModelConfig.arch='encoder', got arch={cfg.arch!r}")
        self.vocab_size = cfg.vocab_size
        self.transformer = Transformer(cfg, causal=False)
        tied = self.transformer.wte.weight if cfg.tie_embeddings else None
        self.head = MLMHead(cfg, tied)

    def forward(
        self,
        idx: Tensor,
        labels: Tensor | None = None,
        attention_mask: Tensor | None = None,
        *,
        predict_all: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """idx: (B, T) with masked inputs already replaced; labels: (B, T), -100 where no
        prediction is wanted; attention_mask: (B, T), 1 = real token.

        With labels (and predict_all=False) returns logits (M, vocab_size) for the M labelled
        positions in row-major (b, t) order, and their mean cross-entropy. Without labels, or with
        predict_all=True (fill-mask, or the dense baseline), returns logits (B, T, vocab_size)."""
        h = self.transformer.forward_hidden(idx, attention_mask)  # (B, T, C)
        if labels is None or predict_all:
            logits = self.head(h)  # (B, T, V_padded)
            loss = None if labels is None else token_loss(logits, labels)
            return logits[..., : self.vocab_size], loss
        picked = labels != IGNORE_INDEX  # (B, T)
        logits = self.head(h[picked])  # (M, V_padded)
        targets = labels[picked]  # (M,)
        if targets.numel() == 0:
            # No labelled position in the batch: a zero loss that still reaches the graph.
            loss = h.sum() * 0.0
        else:
            loss = F.cross_entropy(logits, targets)
        return logits[:, : self.vocab_size], loss
