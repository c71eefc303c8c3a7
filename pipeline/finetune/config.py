"""Finetune configuration: methods, the recipe, early stopping and the from-scratch baseline."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pipeline.configtypes import SEED_LIMIT, ConfigError, bounded

Method = Literal["full", "adapter", "lora", "two_stage"]
Metric = Literal["auto", "accuracy", "macro_f1", "f1", "loss"]


@dataclass(frozen=True)
class FinetuneConfig:
    """Every (task, method, seed) is one run from the pretrained model, plus (with ``baseline``) the
    same run from random initialization: same architecture, tokenizer and recipe.

    Methods: ``full`` (all weights), ``adapter`` (bottleneck adapters at the attention and MLP of each
    block, Houlsby's sequential form or the parallel one (``adapter_form``); ``adapter_where`` "embed"
    adds one after the token embeddings; plus the head), ``lora`` (low-rank updates of ``lora_targets``:
    linear projections by name, and ``wte``, the token embeddings; plus the head; merged into the base
    weights after training, so the saved model is a plain one), ``two_stage`` (the head alone for
    ``head_epochs`` epochs, then ``then``: all weights, adapters or LoRA).
    Only trainable parameters are reported as trainable.

    ``peft_norms``: with adapters or LoRA, the trunk's norm gains train too (at ``peft_lr``), as in
    Houlsby et al. and PEFT's ``modules_to_save``.

    Recipe: AdamW with ``lr`` for the trunk's own weights, ``peft_lr`` for adapter / LoRA weights (and
    norm gains under ``peft_norms``) and ``head_lr`` for the head; linear warmup over ``warmup_ratio`` of
    the steps, then linear decay to 0; ``epochs`` (or ``max_steps`` optimizer steps, whichever ends
    first); evaluation on the validation split after each epoch, and every ``eval_every`` steps as well when
    set (a fractional best epoch, such as 2.3, is an evaluation between two epoch ends).
    Early stopping: stop after ``patience`` evaluations without an improvement of ``metric`` by more than
    ``min_delta``; the best evaluation's weights are kept and saved. ``metric: auto`` is accuracy for
    classification and entity F1 for tagging; ``f1`` is entity F1 for tagging and macro-F1 (the F1 over
    labels) for classification. ``pooling: auto`` is ``first`` (a prepended ``<cls>``) for an encoder and
    ``mean`` for a decoder: on a small pretrained decoder mean pooling did better than the last text
    token (bench/sst2.py: +3.6 points over scratch with mean, none with last); ``last`` stays available,
    ``max`` takes each feature's largest value over the text's tokens (InferSent's max pooling), and
    ``weighted_mean`` weighs the t-th token by t (SGPT's position-weighted mean for causal trunks, whose later
    tokens have seen more of the text).
    Inputs longer than ``max_len`` tokens (capped at the model's block size) are truncated and counted.
    """
    methods: list[Method] = field(default_factory=lambda: ["full", "lora"])
    seeds: list[int] = field(default_factory=lambda: [0])
    baseline: bool = True
    pooling: Literal["auto", "first", "last", "mean", "max", "weighted_mean"] = "auto"
    max_len: int = bounded(64, ge=8)
    epochs: int = bounded(3, ge=1)
    max_steps: int | None = bounded(None, ge=1)
    batch_size: int = bounded(32, ge=1)
    grad_accum: int = bounded(1, ge=1)
    eval_batch_size: int = bounded(64, ge=1)
    eval_every: int | None = bounded(None, ge=1)
    lr: float = bounded(5e-4, gt=0.0)
    head_lr: float = bounded(2e-3, gt=0.0)
    peft_lr: float = bounded(2e-3, gt=0.0)  # adapter and LoRA weights (they start at zero and are few)
    warmup_ratio: float = bounded(0.1, ge=0.0, lt=1.0)
    weight_decay: float = bounded(0.01, ge=0.0)
    # Layer-wise lr decay of the trunk's own weights (modeling.layer_scales): block i of L trains at
    # lr * layer_decay ** (L - i), the embeddings at lr * layer_decay ** (L + 1); 1.0 is off. Adapter / LoRA
    # weights and the head keep their own rates. Not a default: on bench/sst2.py's medium trunk 0.8 lowered full
    # fine-tuning's val accuracy (median of 3 seeds) from 73.5 to 70.1, and its baseline's from 68.2 to 66.9.
    layer_decay: float = bounded(1.0, gt=0.0, le=1.0)
    # GPT-1's auxiliary objective (Radford et al. 2018): the loss adds aux_lm x the next-token loss of the input
    # text, through the trunk's tied token embeddings, so the trunk stays a language model while it learns the
    # task. Decoder trunks only; the baseline trains with it too. 0 is off. Not a default: on bench/sst2.py's
    # medium trunk 0.5 lowered full fine-tuning's val accuracy (median of 3 seeds) from 73.5 to 71.4 and raised
    # its baseline's from 68.2 to 69.7.
    aux_lm: float = bounded(0.0, ge=0.0)
    grad_clip: float = bounded(1.0, ge=0.0)
    # An exponential moving average of the weights (trainer.WeightEMA) with this decay is what validation scores,
    # early stopping watches and the run keeps; 0 is off. The decay warms up as (1 + n) / (10 + n) after n steps
    # and is capped at ema: a long run averages ~1 / (1 - ema) steps, a run shorter than ~10 / (1 - ema) steps
    # (bench/sst2.py's 625 at 0.99) about its last tenth, whatever ema is. Not a default: on bench/sst2.py it raised
    # every method's accuracy by 0.2 to 0.9 points, the from-scratch baseline's as much or more (see FINETUNE there).
    ema: float = bounded(0.0, ge=0.0, lt=1.0)
    dropout: float = bounded(0.1, ge=0.0, lt=1.0)  # before the head (and inside an mlp head)
    # The task head: "linear" (pooled features to the labels), or "mlp", RoBERTa's classification head (a hidden
    # layer of the trunk's width, tanh, dropout, then the labels), for the pretrained runs and the baseline alike.
    head: Literal["linear", "mlp"] = "linear"
    # The trunk's own dropout while fine-tuning (embeddings, attention, MLP), for the pretrained run and the
    # baseline alike; None keeps the pretrained model's. A model pretrained with dropout against overfitting
    # a small corpus can be fine-tuned without it.
    trunk_dropout: float | None = bounded(None, ge=0.0, lt=1.0)
    # The pretrained trunk's last reinit_top blocks are drawn afresh before fine-tuning (modeling.reinit_blocks; Zhang
    # et al. 2021); the from-scratch baseline's are random anyway. 0 keeps every pretrained block. Not a default: on
    # bench/sst2.py's medium trunk (full fine-tuning, val median / mean of 3 seeds) 1 gave 72.9 / 72.77 and 2 73.9 /
    # 73.0, against 73.5 / 73.0 with every block as pretrained.
    reinit_top: int = bounded(0, ge=0)
    # Trunk modules kept frozen in every phase and method, by path inside the trunk ("wte", "wpe",
    # "blocks.0", "blocks.0.attn"...): e.g. ["wte"] keeps pretrained token embeddings, so the words a
    # small train set never shows stay where the trunk expects them. The baseline freezes the same ones.
    # What a method adds stays trainable: with LoRA on "wte" too, the table is frozen and its update learns.
    # Not a default: on bench/sst2.py's medium trunk ["wte"] lowered full fine-tuning's val accuracy (median of
    # 3 seeds) from 73.5 to 70.2, and a frozen random table cost the baseline 8 points (seed 0: 58.6 vs 66.3).
    freeze: list[str] = field(default_factory=list)
    # Inverse-frequency class weights in the loss. On by default: the default tagging task is ~90% O and,
    # in a minutes-long run, an unweighted tagger settles on all-O (val F1 0.00 vs 0.26 weighted, measured).
    class_weights: bool = True
    metric: Metric = "auto"
    patience: int = bounded(2, ge=1)
    min_delta: float = bounded(0.0, ge=0.0)
    lora_r: int = bounded(8, ge=1)
    lora_alpha: float = bounded(16.0, gt=0.0)
    lora_dropout: float = bounded(0.0, ge=0.0, lt=1.0)
    # LoRA+ (Hayou et al. 2024): the factor that starts at zero (B; A for the token embeddings) learns at
    # peft_lr x lora_plus, the other at peft_lr. 1 is plain LoRA; the paper suggests 2^4. Not a default: on
    # bench/sst2.py's medium trunk (two-stage LoRA, val median / mean of 3 seeds) 16 at peft_lr 3e-3 collapsed
    # (61.5 / 61.4) and 4 at 1.5e-3 gave 70.7 / 70.13, against 71.6 / 71.33 for plain LoRA at 3e-3.
    lora_plus: float = bounded(1.0, gt=0.0)
    # Every linear projection of a block: on bench/sst2.py's pretrained decoder, LoRA on the attention
    # projections alone reached val accuracy 64.8 and with the MLP projections too 67.6 (median of 3 seeds).
    # "wte" adds the token embeddings (model.lora.LoRAEmbedding). On bench/sst2.py's medium trunk (val, median
    # / mean of 3 seeds): 70.8 / 71.27 against 69.9 / 70.2 without (peaking by epoch 1-3), and two-stage 71.6 /
    # 71.37 against 71.6 / 71.33: within the seed spread, so not a default.
    lora_targets: list[str] = field(default_factory=lambda: ["attn.qkv", "attn.proj", "mlp.fc", "mlp.proj"])
    # LoRA / adapters: also train the trunk's norm gains (LayerNorm/RMSNorm weights and biases, a few
    # hundred numbers a layer) at ``peft_lr``, as PEFT's modules_to_save / LN-tuning do. Off by default:
    # on bench/sst2.py it changed nothing measurable (val median, 3 seeds: LoRA 67.6 vs 67.6, adapters 62.0 vs 62.0).
    peft_norms: bool = False
    adapter_bottleneck: int = bounded(32, ge=1)
    # "embed": an adapter after the token embeddings too (model.adapters.AdaptedEmbedding). bench/sst2.py's
    # medium trunk (val, median / mean of 3 seeds): 69.7 / 69.63 against 69.1 / 69.3, within the seed spread.
    adapter_where: list[Literal["attn", "mlp", "embed"]] = field(default_factory=lambda: ["attn", "mlp"])
    # the adapters' down projection at the start (model.adapters.INITS); the up projection starts at zero.
    # kaiming measured better on validation (median of 3 seeds, same pretrained decoder): SST-2 64.5 vs 63.2
    # accuracy (bench/sst2_select.py), CoNLL-2003 32.9 vs 31.4 entity F1 (bench/conll.py)
    adapter_init: Literal["near_identity", "kaiming"] = "kaiming"
    # model.adapters.FORMS: "sequential" (Houlsby) or "parallel" (beside the sub-layer, output times adapter_scale).
    # bench/sst2.py's medium trunk (val, two-stage, median / mean of 3 seeds): parallel x4 beside the MLP with
    # bottleneck 128 71.3 / 71.13; beside attention and MLP (64) 70.2 / 70.53; sequential there 69.2 / 69.03.
    # The default stays Houlsby's sequential form (the CoNLL bench and the default tasks were tuned with it).
    adapter_form: Literal["sequential", "parallel"] = "sequential"
    adapter_scale: float = bounded(1.0, gt=0.0)
    head_epochs: int = bounded(1, ge=1)  # two_stage: epochs of stage 1 (head only)
    then: Literal["full", "adapter", "lora"] = "full"  # two_stage: what stage 2 trains
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    # CPU threads of each run; 0 = the cores shared out among a task's runs, which train in parallel worker
    # processes (up to ``run.workers`` at once; see pipeline.finetune.stage.run_threads)
    threads: int = bounded(0, ge=0)
    # each run's best checkpoint (its model/ folder) logged to the stage's MLflow run, under
    # checkpoints/<task>/<run>; tracking only: not in the stage key (a cached stage logs nothing again)
    log_checkpoints: bool = True

    def __post_init__(self) -> None:
        if not self.methods:
            raise ConfigError("finetune.methods: got [], allowed: at least one of full, adapter, lora, two_stage")
        if len(set(self.methods)) != len(self.methods):
            raise ConfigError(f"finetune.methods: duplicate method in {self.methods}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"finetune.seeds: got {self.seeds}, allowed: a non-empty list of distinct ints")
        if any(not 0 <= s < SEED_LIMIT for s in self.seeds):
            raise ConfigError(f"finetune.seeds: got {self.seeds}, allowed: ints from 0 to {SEED_LIMIT - 1}")
        if not self.lora_targets:
            raise ConfigError("finetune.lora_targets: got [], allowed: module names such as attn.qkv, mlp.fc")
        if not self.adapter_where:
            raise ConfigError("finetune.adapter_where: got [], allowed: any of attn, mlp, embed")
        bad = [f for f in self.freeze if not isinstance(f, str) or not f.strip() or f.startswith("head")]
        if bad:
            raise ConfigError(f"finetune.freeze: got {bad}, allowed: module paths inside the trunk such as "
                              "wte, wpe, blocks.0 (the head always trains)")
        if "two_stage" in self.methods and self.head_epochs >= self.epochs:
            raise ConfigError(f"finetune.head_epochs: got {self.head_epochs}, allowed: < epochs ({self.epochs}) "
                              "so that stage 2 has epochs left")

    def trains(self) -> set[str]:
        """What the runs train beyond the head: the methods, with two-stage's second stage (``then``) for it."""
        return {m for m in self.methods if m != "two_stage"} | ({self.then} if "two_stage" in self.methods else set())

    def metric_for(self, kind: str) -> str:
        if self.metric == "f1" and kind != "tagging":
            return "macro_f1"
        if self.metric != "auto":
            return self.metric
        return "f1" if kind == "tagging" else "accuracy"


__all__ = ["FinetuneConfig", "Method", "Metric"]
