"""The unigram baseline: token frequencies of the train split, scored on the validation targets.

It is what a model that ignores context can reach with the same tokenizer, so the gap between it and the
pretrained model's bits per byte is what pretraining bought. Add-one smoothing keeps every id possible.
"""
from __future__ import annotations

import math

import numpy as np

from pipeline.loader import TokenShards


def train_counts(train: TokenShards) -> np.ndarray:
    counts = np.zeros(train.vocab_size, np.int64)
    for tokens in train.tokens:
        counts += np.bincount(tokens, minlength=train.vocab_size)[:train.vocab_size]
    return counts


def log_probs(counts: np.ndarray) -> np.ndarray:
    """Natural-log probabilities with add-one smoothing."""
    return np.log(counts + 1.0) - math.log(counts.sum() + len(counts))


def targets(val: TokenShards, n_targets: int | None = None) -> np.ndarray:
    """The validation targets in stream order: every token but the first (what non-overlapping
    evaluation windows predict), or the first ``n_targets`` of them."""
    n = max(0, val.n_tokens - 1) if n_targets is None else min(n_targets, max(0, val.n_tokens - 1))
    return val.window(1, n).astype(np.int64) if n else np.zeros(0, np.int64)


def score(logp: np.ndarray, ids: np.ndarray, token_bytes: np.ndarray) -> dict[str, float]:
    """Loss (nats per token), perplexity and bits per byte of the unigram model on ``ids``."""
    nll = float(-logp[ids].sum())
    n_bytes = int(token_bytes[ids].sum())
    n = len(ids)
    loss = nll / n if n else float("nan")
    return {"loss": loss, "ppl": math.exp(loss) if n else float("nan"),
            "bpb": nll / math.log(2) / n_bytes if n_bytes else float("nan"), "tokens": n, "bytes": n_bytes}
