"""Task heads attached to a (pretrained) `Transformer` trunk by composition.

    lm, cfg = load_model(folder)
    clf = SequenceClassifier(lm.transformer, n_labels=2, pooling="mean")

Pooling: "first" is BERT's [CLS] position and only makes sense for a bidirectional trunk; a causal
trunk sees the whole sequence only at its last real token, so use "last" (or "mean") there.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor, nn

from model.layers import IGNORE_INDEX, token_loss, vocab_logits
from model.transformer import Transformer

Pooling = Literal["first", "last", "mean", "max", "weighted_mean"]
HeadKind = Literal["linear", "mlp"]


def _head(n_embd: int, n_labels: int) -> nn.Linear:
    head = nn.Linear(n_embd, n_labels)
    nn.init.normal_(head.weight, mean=0.0, std=0.02)
    nn.init.zeros_(head.bias)
    return head


class MLPHead(nn.Module):
    """RoBERTa's classification head: dense (width to width) -> tanh -> dropout -> linear to the labels."""

    def __init__(self, n_embd: int, n_labels: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dense, self.out = _head(n_embd, n_embd), _head(n_embd, n_labels)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.drop(torch.tanh(self.dense(x))))


def head_layers(head: nn.Module) -> list[nn.Linear]:
    """The linear layers of a task head, input side first."""
    return [head] if isinstance(head, nn.Linear) else [head.dense, head.out]


def embedding_table(emb: nn.Module) -> Tensor:
    """A token embedding's effective table, (V, C): the weight of an ``nn.Embedding``, what a method's
    wrapper says it is (``table()``: W plus the low-rank update of a ``LoRAEmbedding``, the adapted rows
    of an ``AdaptedEmbedding``)."""
    return emb.table() if hasattr(emb, "table") else emb.weight


def pool(h: Tensor, attention_mask: Tensor | None, pooling: Pooling) -> Tensor:
    """h: (B, T, C) -> (B, C), over the real tokens (attention_mask 1), padded on either side."""
    if attention_mask is None:
        attention_mask = torch.ones(h.shape[:2], dtype=torch.long, device=h.device)
    rows = torch.arange(h.size(0), device=h.device)
    mask = attention_mask.to(h.dtype)  # (B, T)
    if pooling == "first":  # the first real token (argmax: the first 1; a row without any: position 0)
        return h[rows, (attention_mask != 0).long().argmax(dim=1)]
    if pooling == "weighted_mean":  # position-weighted (SGPT): the t-th real token weighs t, as it saw t tokens
        w = mask.cumsum(dim=1) * mask
        return (h * w.unsqueeze(-1)).sum(dim=1) / w.sum(dim=1, keepdim=True).clamp(min=1.0)
    if pooling == "max":  # each feature's largest value over the real tokens (zeros for a row without any)
        real = attention_mask.unsqueeze(-1) != 0
        pooled = h.masked_fill(~real, torch.finfo(h.dtype).min).amax(dim=1)
        return torch.where(real.any(dim=1), pooled, torch.zeros_like(pooled))
    if pooling == "last":  # the last real token: the largest real position (a row without any: position 0)
        last = ((attention_mask != 0).long() * torch.arange(h.size(1), device=h.device)).argmax(dim=1)  # (B,)
        return h[rows, last]
    return (h * mask.unsqueeze(-1)).sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp(min=1.0)


class _TaskHead(nn.Module):
    """The trunk, dropout and a head to ``n_labels`` (the parts both heads share): ``head`` "linear", or "mlp"
    (``MLPHead``, RoBERTa's: a hidden layer of the trunk's width, its own dropout ``dropout``)."""

    def __init__(self, trunk: Transformer, n_labels: int, dropout: float = 0.0, head: HeadKind = "linear") -> None:
        super().__init__()
        if n_labels < 1:
            raise ValueError(f"n_labels={n_labels!r}: must be >= 1")
        if head not in get_args(HeadKind):
            raise ValueError(f"head={head!r}: must be one of {get_args(HeadKind)}")
        self.n_labels, self.dropout, self.head_kind = n_labels, dropout, head
        self.trunk = trunk
        self.drop = nn.Dropout(dropout)
        self.head = _head(trunk.n_embd, n_labels) if head == "linear" else MLPHead(trunk.n_embd, n_labels, dropout)
        self.aux_lm, self.vocab_size = 0.0, trunk.wte.num_embeddings

    def set_aux_lm(self, weight: float, vocab_size: int | None = None) -> None:
        """Training only: add ``weight`` x the next-token loss of the input, read through the tied token
        embeddings, to the task loss (GPT-1's auxiliary LM objective; a causal trunk only). 0 turns it off.
        With LoRA or an adapter on the token embeddings the projection reads the adapted table
        (``embedding_table``)."""
        if weight < 0:
            raise ValueError(f"aux_lm weight={weight!r}: must be >= 0")
        if weight and not self.trunk.causal:
            raise ValueError("the auxiliary LM loss needs a causal (decoder) trunk: a bidirectional one sees "
                             "the token it would predict")
        self.aux_lm = float(weight)
        self.vocab_size = vocab_size or self.trunk.wte.num_embeddings

    def _with_aux_lm(self, loss: Tensor | None, h: Tensor, idx: Tensor, attention_mask: Tensor | None) -> Tensor | None:
        if loss is None or not self.aux_lm or not self.training:
            return loss
        target = idx[:, 1:]
        if attention_mask is not None:
            target = target.masked_fill(attention_mask[:, 1:] == 0, IGNORE_INDEX)
        logits = vocab_logits(h[:, :-1], embedding_table(self.trunk.wte), None, self.vocab_size)
        return loss + self.aux_lm * token_loss(logits, target)


class SequenceClassifier(_TaskHead):
    """One label per sequence: pooled trunk output -> dropout -> linear."""

    def __init__(
        self, trunk: Transformer, n_labels: int, pooling: Pooling = "first", dropout: float = 0.0,
        head: HeadKind = "linear",
    ) -> None:
        if pooling not in get_args(Pooling):
            raise ValueError(f"pooling={pooling!r}: must be one of {get_args(Pooling)}")
        super().__init__(trunk, n_labels, dropout, head)
        self.pooling = pooling

    def forward(
        self,
        idx: Tensor,
        attention_mask: Tensor | None = None,
        labels: Tensor | None = None,
        class_weights: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """idx: (B, T); labels: (B,), -100 ignored; class_weights: (n_labels,) for imbalanced
        classes. Returns logits (B, n_labels) and the (weighted) mean cross-entropy."""
        h = self.trunk.forward_hidden(idx, attention_mask)  # (B, T, C)
        logits = self.head(self.drop(pool(h, attention_mask, self.pooling)))  # (B, n_labels)
        loss = None if labels is None else token_loss(logits, labels, class_weights)
        return logits, self._with_aux_lm(loss, h, idx, attention_mask)


class TokenClassifier(_TaskHead):
    """One label per token (tagging, NER): trunk output -> dropout -> linear at every position."""

    def forward(
        self,
        idx: Tensor,
        attention_mask: Tensor | None = None,
        labels: Tensor | None = None,
        class_weights: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """idx: (B, T); labels: (B, T) with -100 on padding and non-first sub-words. Returns
        logits (B, T, n_labels) and the (weighted) mean cross-entropy over labelled tokens."""
        h = self.trunk.forward_hidden(idx, attention_mask)  # (B, T, C)
        logits = self.head(self.drop(h))  # (B, T, n_labels)
        loss = None if labels is None else token_loss(logits, labels, class_weights)
        return logits, self._with_aux_lm(loss, h, idx, attention_mask)
