"""Pretrain stage: a GPT-style decoder (causal LM) or BERT-style encoder (masked LM) on the token shards.

Output: ``model/`` (the best checkpoint by validation loss, with its tokenizer: the "pretrained
model" that fine-tuning and evaluation use), ``checkpoint/`` (the last complete training state:
weights, optimizer, RNG, step; an interrupted run resumes from it, and continued pretraining can
start from it), ``reports/metrics.jsonl`` and ``reports/loss_curve.png``.
"""
from __future__ import annotations

from typing import Any

from pipeline.pretrain.config import ModelSection, PretrainConfig
from pipeline.stage import StageContext

VERSION = "2"  # 2: masked-LM validation figures by the one definition of pipeline.lm_eval
REGISTER_MODEL = "lmforge-pretrained"  # the runner registers ``model/`` under this name, with lineage tags
__all__ = ["VERSION", "PretrainConfig", "ModelSection", "run"]


def run(cfg: PretrainConfig, ctx: StageContext) -> dict[str, Any]:
    from pipeline.pretrain.trainer import train
    tokens = ctx.input("tokens")
    lineage = {"tokenizer_key": tokens.key, "corpus_key": tokens.inputs.get("docs", ""), "pretrain_key": ctx.key}
    stats = train(cfg, tokens.path, ctx.out, ctx.tracker, meta=lineage)
    ctx.tracker.log_artifact(ctx.out / "model", "model")
    return {**stats, **lineage}
