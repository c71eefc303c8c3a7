"""Pretrain configuration: the model's shape and the training recipe."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pipeline.configtypes import SEED_LIMIT, ConfigError, bounded


@dataclass(frozen=True)
class ModelSection:
    """The model, minus its vocabulary (that comes from the tokenizer). See model.ModelConfig. ``n_layer``: the
    encoder's layers for ``encoder_decoder`` (T5-style), whose decoder has ``n_dec_layer`` (None: as many)."""
    arch: Literal["decoder", "encoder", "encoder_decoder"] = "decoder"
    n_layer: int = bounded(4, ge=1)
    n_dec_layer: int | None = bounded(None, ge=1)
    n_head: int = bounded(4, ge=1)
    n_embd: int = bounded(256, ge=8)
    block_size: int = bounded(256, ge=8)
    norm: Literal["layernorm", "rmsnorm"] = "rmsnorm"
    mlp: Literal["gelu", "swiglu", "relu2"] = "relu2"
    pos: Literal["learned", "rotary", "relative"] = "rotary"
    bias: bool = False
    dropout: float = bounded(0.0, ge=0.0, lt=1.0)
    tie_embeddings: bool = True
    qk_norm: bool = True

    def __post_init__(self) -> None:
        if self.arch == "encoder_decoder" and self.n_dec_layer == self.n_layer:  # what None means: one key, one model
            object.__setattr__(self, "n_dec_layer", None)
        if self.n_dec_layer is not None and self.arch != "encoder_decoder":
            raise ConfigError(f"pretrain.model.n_dec_layer: got {self.n_dec_layer} for arch {self.arch!r}, allowed: "
                              "null (the decoder's layers of an encoder_decoder model only)")
        if self.n_embd % self.n_head:
            raise ConfigError(f"pretrain.model.n_embd: got {self.n_embd}, allowed: a multiple of "
                              f"pretrain.model.n_head ({self.n_head})")
        if self.pos == "rotary" and self.n_embd // self.n_head % 2:  # (model.ModelConfig checks it too, later)
            raise ConfigError(f"pretrain.model.n_embd: got {self.n_embd}, allowed: an even head size n_embd / n_head "
                              f"(here {self.n_embd // self.n_head}) with pretrain.model.pos 'rotary', which turns "
                              "pairs of each head's dimensions; or pos: learned")


def may_change_when_continuing(model: Any) -> set[str]:  # (a ModelSection or a ModelConfig: its .pos)
    """The model settings continued pretraining may change from the saved model's: its dropout, and with rotary
    or relative positions its context (``block_size``: no table of positions holds it); every other one shapes
    the weights."""
    return {"dropout"} | ({"block_size"} if model.pos in ("rotary", "relative") else set())


@dataclass(frozen=True)
class PretrainConfig:
    """Objective ``auto`` is causal LM for a decoder, masked LM for an encoder and span corruption for an
    encoder-decoder (T5's: ``mask_rate`` of the tokens in spans of ``mean_span`` tokens on average, each span
    one sentinel in the encoder's input, the decoder writing the spans; ``pipeline.loader.spans``).

    The global batch is ``batch_size × block_size × grad_accum × world size`` tokens; with
    ``global_batch_tokens`` set, ``grad_accum`` is derived from it. ``schedule``: linear warmup then
    cosine decay to ``min_lr_ratio × lr``, or warmup-stable-decay (``wsd``: flat, then a linear cool-down
    over the last ``decay_frac`` of the steps). ``init_from``: a pretrained model folder to continue
    pretraining from (same architecture and tokenizer).
    """
    model: ModelSection = field(default_factory=ModelSection)
    objective: Literal["auto", "causal", "masked", "span"] = "auto"
    mask_rate: float = bounded(0.15, gt=0.0, lt=1.0)
    mean_span: float = bounded(3.0, ge=1.0)
    max_steps: int = bounded(400, ge=1)
    batch_size: int = bounded(16, ge=1)
    grad_accum: int = bounded(1, ge=1)
    global_batch_tokens: int | None = bounded(None, ge=1)
    lr: float = bounded(2e-3, gt=0.0)
    min_lr_ratio: float = bounded(0.1, ge=0.0, le=1.0)
    warmup_steps: int = bounded(40, ge=0)
    schedule: Literal["cosine", "wsd"] = "wsd"
    decay_frac: float = bounded(0.3, gt=0.0, le=1.0)
    weight_decay: float = bounded(0.1, ge=0.0)
    beta1: float = bounded(0.9, ge=0.0, lt=1.0)
    beta2: float = bounded(0.95, ge=0.0, lt=1.0)
    grad_clip: float = bounded(1.0, ge=0.0)
    eval_every: int = bounded(100, ge=1)
    eval_batches: int = bounded(20, ge=1)
    checkpoint_every: int = bounded(100, ge=1)
    log_every: int = bounded(10, ge=1)
    seed: int = bounded(1337, ge=0, lt=SEED_LIMIT)
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    dtype: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA, fp32 elsewhere
    compile: bool = False
    threads: int = bounded(0, ge=0)  # CPU threads; 0 = one per core
    init_from: str | None = None

    @property
    def resolved_objective(self) -> str:
        if self.objective == "auto":
            return OBJECTIVES[self.model.arch]
        return self.objective

    def __post_init__(self) -> None:
        if self.resolved_objective != OBJECTIVES[self.model.arch]:
            raise ConfigError(f"pretrain.objective: got {self.objective!r} for arch {self.model.arch!r}, allowed: "
                              "'causal' with a decoder, 'masked' with an encoder, 'span' with an encoder_decoder "
                              "(or 'auto')")
        if self.resolved_objective == "span":
            check_noise(self.mask_rate, self.mean_span, "pretrain")


OBJECTIVES = {"decoder": "causal", "encoder": "masked", "encoder_decoder": "span"}  # each architecture's objective


def check_noise(mask_rate: float, mean_span: float, section: str) -> None:
    """Span corruption's noise density against its mean span (``spans.max_noise``): beyond the bound the spans
    merge into fewer, longer ones than ``mean_span`` says."""
    from pipeline.loader.spans import max_noise
    if mask_rate > max_noise(mean_span):
        raise ConfigError(f"{section}.mask_rate: got {mask_rate}, allowed: at most {max_noise(mean_span):.4g} with "
                          f"{section}.mean_span {mean_span} (each span needs a kept token before it; beyond that "
                          "the spans would merge into longer ones)")
