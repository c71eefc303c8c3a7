"""Predictions of a task model on an encoded split, and their metrics against the gold labels."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.finetune.encode import IGNORE, Encoded, collate, eval_batches
from pipeline.tasks.metrics import accuracy, macro_f1, per_label_prf, span_f1


@torch.no_grad()
def predict(model: nn.Module, enc: Encoded, tagging: bool, pad_id: int, batch_size: int,
            device: torch.device = torch.device("cpu"), probs: list | None = None) -> tuple[list[Any], float]:
    """Per example: a class id (classification) or a tag id per word (tagging; a word lost to
    truncation gets ``O``, ``enc.outside``). Also the mean loss over labelled positions. ``probs``, when
    given, is filled per example with the softmax over the labels (classification) or the predicted tag's
    probability per word (tagging; 1.0 for a word lost to truncation)."""
    was_training = model.training
    model.eval()
    preds: list[Any] = [None] * len(enc)
    if probs is not None:
        probs[:] = [None] * len(enc)
    loss_sum, n_sum = 0.0, 0
    for rows in eval_batches(enc, batch_size):
        idx, mask, lab = collate(enc, rows, pad_id, tagging)
        logits, loss = model(idx.to(device), mask.to(device), lab.to(device))
        n = int((lab != IGNORE).sum()) if tagging else len(rows)
        if n:  # (a batch of no labelled position has a NaN mean loss, which times 0 is still NaN)
            loss_sum += float(loss) * n
            n_sum += n
        best = logits.argmax(dim=-1).cpu().numpy()
        soft = logits.float().softmax(dim=-1).cpu().numpy() if probs is not None else None
        for r, i in enumerate(rows):
            if tagging:
                first = enc.first[i]
                preds[i] = np.where(first >= 0, best[r][np.maximum(first, 0)], enc.outside).tolist()
                if soft is not None:
                    probs[i] = np.where(first >= 0, soft[r].max(axis=-1)[np.maximum(first, 0)], 1.0).tolist()
            else:
                preds[i] = int(best[r])
                if soft is not None:
                    probs[i] = soft[r].tolist()
    model.train(was_training)
    return preds, loss_sum / max(n_sum, 1)


def gold_of(examples: list[dict[str, Any]], tagging: bool) -> list[Any]:
    return [ex["tags"] if tagging else ex["label"] for ex in examples]


def metrics(examples: list[dict[str, Any]], preds: list[Any], labels: list[str], kind: str,
            scheme: str | None, detail: bool = False) -> dict[str, Any]:
    """Classification: accuracy, macro_f1 (over the labels in gold or predictions). Tagging: entity-level precision,
    recall, f1 (CoNLL), macro_f1 over entity types, token accuracy. ``detail`` adds per_label /
    per_type tables and, for classification, the confusion matrix (rows gold, columns predicted)."""
    if kind == "tagging":
        gold = [ex["tags"] for ex in examples]
        pred = [[labels[j] for j in p] for p in preds]
        s = span_f1(gold, pred, scheme or "BIO")
        flat_g = [t for g in gold for t in g]
        flat_p = [t for p in pred for t in p]
        out = {"precision": s["precision"], "recall": s["recall"], "f1": s["f1"],
               "macro_f1": float(np.mean([v["f1"] for v in s["per_type"].values()])) if s["per_type"] else 0.0,
               "accuracy": accuracy(flat_g, flat_p), "n_gold_spans": s["n_gold"], "n_pred_spans": s["n_pred"]}
        if detail:
            out["per_type"] = s["per_type"]
        return out
    gold = [ex["label"] for ex in examples]
    pred = [labels[j] for j in preds]
    # over the labels in gold or predictions (sklearn's macro average): a label neither holds has no F1, and
    # counting it as 0 once halved a score (a stray class "1" in one train row)
    out = {"accuracy": accuracy(gold, pred), "macro_f1": macro_f1(gold, pred)}
    if detail:
        out["per_label"] = per_label_prf(gold, pred, labels)
        index = {lab: i for i, lab in enumerate(labels)}
        cm = np.zeros((len(labels), len(labels)), dtype=np.int64)
        for g, p in zip(gold, pred):
            cm[index[g], index[p]] += 1
        out["confusion"] = cm.tolist()
    return out


__all__ = ["predict", "metrics", "gold_of"]
