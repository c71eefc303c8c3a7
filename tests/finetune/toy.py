"""The toy classification task the fine-tuning tests train on ("error" -> neg, "value" -> pos), and the
helpers to build a task model on the tiny pretrained trunk and fit it."""
from __future__ import annotations

import random

import torch

from pipeline.finetune import modeling, trainer
from pipeline.finetune.encode import encode

LABELS = ["neg", "pos"]


def examples(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = LABELS[i % 2]
        word = "error" if label == "neg" else "value"
        words = [rng.choice(["the", "a", "list", "file"]) for _ in range(rng.randint(2, 6))] + [word]
        out.append({"text": " ".join(words), "label": label, "origin": f"x:{i}"})
    return out


def toy_data(tokenizer) -> tuple:
    """(train, validation, their encodings): 48 and 16 examples."""
    train, val = examples(48), examples(16, seed=1)
    return (train, val, encode(train, "classification", LABELS, tokenizer, "decoder", 32),
            encode(val, "classification", LABELS, tokenizer, "decoder", 32))


def snapshot(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def changed(before, model) -> set[str]:
    return {k for k, v in model.named_parameters() if not torch.equal(before[k], v.detach())}


def build(pretrained_root, method, cfg, seed=0):
    model = modeling.build("classification", 2, modeling.load_config(pretrained_root / "model"),
                           pretrained_root / "model", "auto", 0.0, seed)
    modeling.add_method_modules(model, cfg.then if method == "two_stage" else method, cfg)
    return model


def run_fit(model, method, data, cfg, log=None):
    train, val, tr_enc, va_enc = data
    return trainer.fit(model, method, tr_enc, val, va_enc, LABELS, "classification", None, cfg, 0, 0, log=log)
