"""Language-model evaluation on token shards: loss, perplexity and bits per byte.

Bits per byte follows lm-evaluation-harness: the summed negative log-likelihood (nats) of the
targets, divided by ln 2 and by the UTF-8 bytes those targets stand for. It does not depend on the
tokenizer, so models with different vocabularies compare.

Every objective is scored on the loader's validation windows (non-overlapping, in stream order; the
first ``max_batches`` batches of them, or all). A masked LM sees a fixed share (``cfg.mask_rate``) of each
window's ordinary tokens replaced by the mask id, chosen by a fixed seed per window (no 80/10/10 at
evaluation: the figure measures prediction from context alone); its loss is a masked-token
cross-entropy, so it gets an accuracy and a pseudo-perplexity, not bits per byte. The pretrain stage's
validation figures and the evaluate stage's are this one definition. An encoder-decoder reads each window
span-corrupted (``pipeline.loader.spans``: ``cfg.mask_rate`` of its real tokens in spans of ``cfg.mean_span``,
T5's 3 when the config has none; windows of the training length, ``raw_length``), the spans drawn by a fixed seed
per window; its loss is the cross-entropy of the decoder's targets (the spans' tokens, their sentinels and EOS),
so it too gets an accuracy, not bits per byte.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.loader import IGNORE_INDEX, TokenShards

MASK_SEED = 0  # which positions the masked-LM evaluation masks: fixed, so runs and checkpoints compare


@torch.no_grad()
def evaluate_lm(model: torch.nn.Module, shards: TokenShards, cfg: Any, rt: Any,
                max_batches: int | None = None, batch_size: int | None = None) -> dict[str, float]:
    """Figures of ``model`` on ``shards``; ``cfg`` needs ``model.block_size`` and ``batch_size``."""
    was_training = model.training
    model.eval()
    try:
        if type(model).__name__ == "MaskedLM":
            return _masked(model, shards, cfg, rt, max_batches, batch_size)
        if type(model).__name__ == "Seq2SeqLM":
            return _span(model, shards, cfg, rt, max_batches, batch_size)
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
    mask_id, pad_id = shards.special_ids["mask"], shards.pad_id
    special = np.zeros(shards.vocab_size, dtype=bool)
    special[np.asarray(shards.meta["all_special_ids"], dtype=np.int64)] = True
    special[mask_id] = True
    mask_rate = getattr(cfg, "mask_rate", 0.15)
    nll, n, correct = 0.0, 0, 0
    size = batch_size or cfg.batch_size
    for i, b in enumerate(shards.val_batches(cfg.model.block_size, size, max_batches)):
        x = b.x.numpy()
        real = x != pad_id
        # drawn per window (its index in the stream), not per batch: the pretrain stage and the evaluate stage
        # batch the windows differently and must mask the same positions
        draws = np.stack([np.random.default_rng([MASK_SEED, i * size + r]).random(x.shape[1])
                          for r in range(x.shape[0])])
        chosen = (draws < mask_rate) & real & ~special[x]
        if not chosen.any():
            continue
        labels = torch.from_numpy(np.where(chosen, x, IGNORE_INDEX))
        inputs = torch.from_numpy(np.where(chosen, mask_id, x))
        with rt.autocast():
            logits, _ = model(inputs.to(rt.device), labels.to(rt.device), torch.from_numpy(real).to(rt.device))
        target = labels[labels != IGNORE_INDEX].to(rt.device)  # row-major, as MaskedLM returns its logits
        nll += float(F.cross_entropy(logits.float(), target, reduction="sum"))
        correct += int((logits.argmax(-1) == target).sum())
        n += int(target.numel())
    if n == 0:
        return {}
    loss = nll / n
    # no perplexity: the loss is over ~15% masked positions, not the text (evaluate reports none for encoders)
    return {"loss": loss, "accuracy": correct / n, "tokens": float(n)}


def _span(model, shards, cfg, rt, max_batches, batch_size) -> dict[str, float]:
    """Span-target loss and accuracy, and ``encoder_gain``: how much worse (nats per target) the decoder does when
    each window's source is its partner's (windows 2k and 2k + 1 of the stream swap): near 0, it does not read
    its encoder yet, and the encoder learned nothing a task head could use. A pair that a batch boundary splits
    is left out, so with even batch sizes every pair counts, whatever the batch size."""
    from pipeline.loader.spans import MEAN_SPAN, collate, corrupt, decoder_start, raw_length
    pad_id, eos_id, sentinels = shards.pad_id, shards.special_ids["eos"], list(shards.meta.get("sentinel_ids") or [])
    density, mean_span = getattr(cfg, "mask_rate", 0.15), getattr(cfg, "mean_span", MEAN_SPAN)
    nll, n, correct = 0.0, 0, 0
    own, swapped, n_swapped = 0.0, 0.0, 0  # over the windows whose partner is in their batch
    size = batch_size or cfg.batch_size
    window = raw_length(cfg.model.block_size, density, mean_span)  # as in training: source and target fit
    for i, b in enumerate(shards.val_batches(window, size, max_batches)):
        x = b.x.numpy()
        rows = [x[r][x[r] != pad_id] for r in range(len(x))]
        ids = [i * size + r for r, row in enumerate(rows) if len(row) >= 2]  # the windows' stream positions
        pairs = [corrupt(rows[g - i * size], np.random.default_rng([MASK_SEED, g]), density, mean_span, sentinels,
                         eos_id) for g in ids]  # drawn per window, as for the masked LM
        if not pairs:
            continue
        t = {k: v.to(rt.device) for k, v in collate(pairs, pad_id, decoder_start(shards.special_ids)).items()}
        row_nll, logits = _target_nll(model, t, t["src"], t["src_mask"], rt)
        keep = t["targets"] != IGNORE_INDEX
        target = t["targets"][keep]
        nll += float(row_nll.sum())
        correct += int((logits[keep].argmax(-1) == target).sum())
        n += int(target.numel())
        where = {g: r for r, g in enumerate(ids)}
        partner = [where.get(g ^ 1, -1) for g in ids]
        paired = [r for r, p in enumerate(partner) if p >= 0]
        if paired:
            perm = torch.tensor([p if p >= 0 else r for r, p in enumerate(partner)], device=rt.device)
            other, _ = _target_nll(model, t, t["src"][perm], t["src_mask"][perm], rt)
            sel = torch.tensor(paired, device=rt.device)
            own, swapped = own + float(row_nll[sel].sum()), swapped + float(other[sel].sum())
            n_swapped += int(keep[sel].sum())
    if n == 0:
        return {}
    out = {"loss": nll / n, "accuracy": correct / n, "tokens": float(n)}
    if n_swapped:
        out["encoder_gain"] = (swapped - own) / n_swapped
    return out


def _target_nll(model, t: dict, src, src_mask, rt) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's summed target cross-entropy (B,) given this source, and the logits (B, T, V) in float."""
    with rt.autocast():
        logits, _ = model(src, t["tgt_in"], None, src_mask, t["tgt_mask"])
    logits = logits.float()
    ce = F.cross_entropy(logits.reshape(-1, logits.size(-1)), t["targets"].reshape(-1), ignore_index=IGNORE_INDEX,
                         reduction="none")
    return ce.view(t["targets"].shape).sum(1), logits
