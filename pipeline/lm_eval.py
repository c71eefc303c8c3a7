"""Language-model evaluation on token shards: loss, perplexity and bits per byte.

Bits per byte follows lm-evaluation-harness: the summed negative log-likelihood (nats) of the
targets, divided by ln 2 and by the UTF-8 bytes those targets stand for. It does not depend on the
tokenizer, so models with different vocabularies compare. Causal LMs are scored on non-overlapping
windows covering the validation stream in order; masked LMs on fixed-seed masked batches (their loss
is a masked-token cross-entropy, so they get an accuracy and a pseudo-perplexity, not bits per byte).
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from pipeline.loader import IGNORE_INDEX, MaskedBatches, TokenShards

EVAL_SEED = 1234567  # masked-LM eval batches: fixed, and apart from any training seed


@torch.no_grad()
def evaluate_lm(model: torch.nn.Module, shards: TokenShards, cfg: Any, rt: Any,
                max_batches: int | None = None, batch_size: int | None = None) -> dict[str, float]:
    """Figures of ``model`` on ``shards``; ``cfg`` needs ``model.block_size`` and ``batch_size``."""
    was_training = model.training
    model.eval()
    try:
        if type(model).__name__ == "MaskedLM":
            return _masked(model, shards, cfg, rt, max_batches or 20, batch_size)
        return _causal(model, shards, cfg, rt, max_batches, batch_size)
    finally:
        model.train(was_training)


def _causal(model, shards, cfg, rt, max_batches, batch_size) -> dict[str, float]:
    nll, n_tok, n_bytes = 0.0, 0, 0
    for b in shards.val_batches(cfg.model.block_size, batch_size or cfg.batch_size, max_batches):
        x, y = b.x.to(rt.device), b.y.to(rt.device)
        with rt.autocast():
            logits, _ = model(x)
        nll += float(F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.view(-1),
                                     ignore_index=IGNORE_INDEX, reduction="sum"))
        n_tok += b.n_targets
        n_bytes += b.n_bytes
    if n_tok == 0:
        return {}
    loss = nll / n_tok
    out = {"loss": loss, "ppl": math.exp(min(loss, 50.0)), "tokens": float(n_tok), "bytes": float(n_bytes)}
    if n_bytes:
        out["bpb"] = nll / math.log(2) / n_bytes
    return out


def _masked(model, shards, cfg, rt, max_batches, batch_size) -> dict[str, float]:
    if shards.n_tokens <= cfg.model.block_size:
        return {}
    batches = MaskedBatches(shards, cfg.model.block_size, batch_size or cfg.batch_size, EVAL_SEED,
                            mask_rate=getattr(cfg, "mask_rate", 0.15))
    nll, n, correct = 0.0, 0, 0
    for step in range(max_batches):
        x, labels = batches.get(step)
        x, labels = x.to(rt.device), labels.to(rt.device)
        with rt.autocast():
            logits, _ = model(x, labels)  # (M, V): only the masked positions
        target = labels[labels != IGNORE_INDEX]
        nll += float(F.cross_entropy(logits.float(), target, reduction="sum"))
        correct += int((logits.argmax(-1) == target).sum())
        n += int(target.numel())
    if n == 0:
        return {}
    loss = nll / n
    return {"loss": loss, "ppl": math.exp(min(loss, 50.0)), "accuracy": correct / n, "tokens": float(n)}
