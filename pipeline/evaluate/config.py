"""Evaluate configuration: how much held-out text to score, extra text files, and where to run."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pipeline.configtypes import bounded


@dataclass(frozen=True)
class EvaluateConfig:
    """The pretrained model is scored on the tokenize stage's validation split (and on ``extra_texts``,
    text files tokenized with the model's tokenizer); every fine-tuned run on its task's test split.

    ``extra_texts``: paths relative to the project folder (or absolute), e.g.
    ``../shared/datasets/wikitext2_tokenized/test.txt``. Each file's content digest is part of the
    stage key (an edited file is scored again), and the report records it.
    """
    max_eval_tokens: int | None = bounded(None, ge=1)  # validation targets to score; None = the whole split
    batch_size: int = bounded(16, ge=1)                 # windows of block_size tokens per forward pass
    extra_texts: list[str] = field(default_factory=list)
    # An encoder: the share of tokens masked when scoring; an encoder-decoder: the share cut out in spans of
    # ``mean_span`` tokens on average. A fixed yardstick (T5's 0.15 and 3 by default), whatever the model was
    # pretrained with, so models compare; its pretraining validation used its own pretrain.mask_rate / mean_span.
    mask_rate: float = bounded(0.15, gt=0.0, lt=1.0)
    mean_span: float = bounded(3.0, ge=1.0)
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    dtype: Literal["auto", "fp32", "bf16"] = "fp32"  # fp32: figures comparable across machines
    threads: int = bounded(0, ge=0)                   # CPU threads; 0 = one per core
