"""One fine-tuning run, top to bottom: phases, warmup/decay, evaluation, early stopping on the best.

A run is one or two phases (``two_stage``: the head alone, then ``then``); each phase has its own
AdamW and schedule (linear warmup over ``warmup_ratio`` of its steps, then linear decay to 0). The
validation split is scored after every epoch (and every ``eval_every`` steps as well); the weights of the best
evaluation are kept in memory and put back at the end, so the model a run returns is its best one.
Early stopping counts evaluations without improvement only in the last phase. With ``ema``, validation
scores an exponential moving average of the weights (``WeightEMA``), and the weights kept are that average.
"""
from __future__ import annotations

import math
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from pipeline.configtypes import ConfigError
from pipeline.finetune import modeling
from pipeline.finetune.config import FinetuneConfig
from pipeline.finetune.encode import Encoded, class_weights, collate, train_batches
from pipeline.finetune.scoring import metrics, predict
from pipeline.progress import Progress
from pipeline.stage import Diverged

LOWER_IS_BETTER = {"loss"}


@dataclass
class FitResult:
    best_epoch: float
    best_step: int
    best: dict[str, Any]  # validation metrics of the kept weights (and "loss")
    curves: list[dict[str, float]] = field(default_factory=list)
    steps: int = 0
    stopped_early: bool = False


def phases(method: str, cfg: FinetuneConfig) -> list[tuple[str, int]]:
    """(what trains, epochs) per phase."""
    if method == "two_stage":
        return [("head", cfg.head_epochs), (cfg.then, cfg.epochs - cfg.head_epochs)]
    return [(method, cfg.epochs)]


def lr_scale(step: int, total: int, warmup: int) -> float:
    if warmup and step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def _improved(score: float, best: float | None, metric: str, min_delta: float) -> bool:
    if best is None:
        return True
    return score < best - min_delta if metric in LOWER_IS_BETTER else score > best + min_delta


class WeightEMA:
    """An exponential moving average of a model's parameters (Polyak averaging; timm's
    ModelEmaV2, the EMA of "Mean teachers"): after each optimizer step ``shadow = d * shadow + (1 - d) * p``,
    with the warm-up ``d = min(decay, (1 + n) / (10 + n))`` after n updates, so the first updates are not
    swamped by the initial weights. ``swapped()`` puts the average into the model for a block (evaluation,
    keeping the best) and the live weights back after it. Frozen weights do not move, so their average is
    themselves; the average follows every parameter, so it survives a change of what trains (two-stage)."""

    def __init__(self, model: nn.Module, decay: float):
        self.model, self.decay, self.updates = model, decay, 0
        self.shadow = {n: p.detach().clone() for n, p in model.named_parameters()}

    @torch.no_grad()
    def update(self) -> None:
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        self.updates += 1
        for n, p in self.model.named_parameters():
            if p.requires_grad:
                self.shadow[n].lerp_(p.detach(), 1.0 - d)

    @contextmanager
    def swapped(self):
        params = dict(self.model.named_parameters())
        live = {n: params[n].detach().clone() for n in self.shadow}
        with torch.no_grad():
            for n, v in self.shadow.items():
                params[n].copy_(v)
        try:
            yield
        finally:
            with torch.no_grad():
                for n, v in live.items():
                    params[n].copy_(v)


class _Validation:
    """Scores the validation split, records the curve, keeps the best weights, counts patience."""

    def __init__(self, model: nn.Module, examples: list[dict[str, Any]], enc: Encoded, labels: list[str], kind: str,
                 scheme: str | None, pad_id: int, cfg: FinetuneConfig, device: torch.device,
                 log: Callable[[dict[str, float], int], None] | None):
        self.model, self.examples, self.enc, self.labels = model, examples, enc, labels
        self.kind, self.scheme, self.pad_id, self.cfg, self.device, self.log = kind, scheme, pad_id, cfg, device, log
        self.metric = cfg.metric_for(kind)
        self.result = FitResult(best_epoch=0, best_step=0, best={})
        self.best_score: float | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.bad = 0

    def __call__(self, point: float, step: int, train_loss: float, counts: bool) -> None:
        preds, loss = predict(self.model, self.enc, self.kind == "tagging", self.pad_id, self.cfg.eval_batch_size,
                              self.device)
        scores = {**metrics(self.examples, preds, self.labels, self.kind, self.scheme), "loss": loss}
        rec = {"epoch": round(point, 4), "step": step, "train_loss": train_loss,
               **{f"val_{k}": float(v) for k, v in scores.items()}}
        self.result.curves.append(rec)
        if self.log is not None:
            self.log({k: v for k, v in rec.items() if k not in ("epoch", "step")}, step)  # the optimizer step
        for name, value in (("training", train_loss), ("validation", loss)):
            if not math.isfinite(value):  # NaN weights would score as a constant guess, and could be kept
                raise Diverged(f"finetune: the {name} loss is {value} at step {step} (epoch {point:g}): the run "
                               "diverged; lower finetune.lr (or head_lr, peft_lr), or raise warmup_ratio")
        if _improved(scores[self.metric], self.best_score, self.metric, self.cfg.min_delta):
            self.best_score, self.bad = scores[self.metric], 0
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.result.best_epoch, self.result.best_step, self.result.best = rec["epoch"], step, scores
        elif counts:
            self.bad += 1

    @property
    def out_of_patience(self) -> bool:
        return self.bad >= self.cfg.patience


def fit(model: nn.Module, method: str, train_enc: Encoded, val_examples: list[dict[str, Any]], val_enc: Encoded,
        labels: list[str], kind: str, scheme: str | None, cfg: FinetuneConfig, seed: int, pad_id: int,
        device: torch.device = torch.device("cpu"), log: Callable[[dict[str, float], int], None] | None = None,
        label: str = "finetune", progress: bool = True) -> FitResult:
    """Train ``model`` (method modules already inserted) and leave it holding its best weights.
    ``progress``: print a throttled progress line (``label``)."""
    tagging = kind == "tagging"
    model.to(device)
    val = _Validation(model, val_examples, val_enc, labels, kind, scheme, pad_id, cfg, device, log)
    weights = class_weights(train_enc, len(labels)).to(device) if cfg.class_weights else None
    lengths = [len(x) for x in train_enc.ids]
    batches_per_epoch = math.ceil(len(lengths) / cfg.batch_size)  # buckets hold whole batches but the last
    steps_per_epoch = math.ceil(batches_per_epoch / cfg.grad_accum)
    plan = phases(method, cfg)
    total_steps = sum(e for _, e in plan) * steps_per_epoch
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
        head_steps = sum(e for _, e in plan[:-1]) * steps_per_epoch
        if total_steps <= head_steps:  # two-stage: the second stage would never train, yet count as trained
            raise ConfigError(f"finetune.max_steps: got {cfg.max_steps}, allowed: > {head_steps} (two-stage's head "
                              f"phase, head_epochs={cfg.head_epochs} x {steps_per_epoch} steps an epoch, takes those)")
    bar = Progress(label, total=total_steps, unit="steps", enabled=progress)
    step, epoch_no, loss_acc, loss_n = 0, 0, 0.0, 0
    stop = False
    frozen = modeling.frozen_names(model, cfg.freeze)
    ema = WeightEMA(model, cfg.ema) if cfg.ema else None
    for phase_no, (what, epochs) in enumerate(plan):
        last_phase = phase_no == len(plan) - 1
        norms = cfg.peft_norms and what in ("lora", "adapter")
        modeling.set_trainable(model, what, norms=norms, freeze=frozen)
        opt = modeling.optimizer(model, cfg.lr, cfg.head_lr, cfg.weight_decay, cfg.peft_lr,
                                 peft_extra=modeling.norm_names(model) if norms else frozenset(),
                                 layer_decay=cfg.layer_decay, lora_plus=cfg.lora_plus)
        phase_steps = min(epochs * steps_per_epoch, total_steps - step)
        warmup, phase_step = int(cfg.warmup_ratio * phase_steps), 0
        model.train()
        for _ in range(epochs):
            if stop or step >= total_steps:
                break
            epoch_no += 1
            for micro, rows in enumerate(train_batches(lengths, cfg.batch_size, seed, epoch_no), 1):
                idx, mask, lab = collate(train_enc, rows, pad_id, tagging)
                _, loss = model(idx.to(device), mask.to(device), lab.to(device), weights)
                # the mean over this step's micro-batches: an epoch's last step may have fewer than grad_accum
                group = min(cfg.grad_accum, batches_per_epoch - (micro - 1) // cfg.grad_accum * cfg.grad_accum)
                (loss / group).backward()
                loss_acc, loss_n = loss_acc + float(loss.detach()), loss_n + 1
                end_of_epoch = micro == batches_per_epoch
                if micro % cfg.grad_accum and not end_of_epoch:
                    continue
                scale = lr_scale(phase_step, phase_steps, warmup)
                for g in opt.param_groups:
                    g["lr"] = g["base_lr"] * scale
                if cfg.grad_clip:
                    nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], cfg.grad_clip)
                opt.step()
                opt.zero_grad(set_to_none=True)
                if ema is not None:
                    ema.update()
                step, phase_step = step + 1, phase_step + 1
                bar.update(1, extra=f"loss {loss_acc / max(loss_n, 1):.4f}")
                last_step = step >= total_steps
                due = cfg.eval_every is not None and step % cfg.eval_every == 0
                if end_of_epoch or last_step or due:
                    with ema.swapped() if ema is not None else nullcontext():
                        val(epoch_no - 1 + micro / batches_per_epoch, step, loss_acc / max(loss_n, 1), last_phase)
                    loss_acc, loss_n = 0.0, 0
                    model.train()
                    stop = last_phase and val.out_of_patience
                if stop or last_step:
                    break
    bar.close()
    if val.best_state is not None:
        model.load_state_dict(val.best_state)
    result = val.result
    result.steps, result.stopped_early = step, stop and step < total_steps
    return result


__all__ = ["fit", "FitResult", "WeightEMA", "phases", "lr_scale"]
