"""FINETUNE stage: the pretrained model → task models (heads; full / adapter / LoRA / two-stage), the
best checkpoint per run by a validation metric, and a from-scratch baseline.

Inputs: ``ctx.input("model").path / "model"`` (the pretrain stage's model folder: weights, config,
``tokenizer/tokenizer.model``) and the ``tasks`` config section (``ctx.extra["tasks"]``; default: the two
stdlib tasks). Output layout (the evaluate stage reads it; ``pipeline.finetune.results`` helps):

    tasks/<task>/train.jsonl, validation.jsonl, test.jsonl   normalized examples (pipeline.tasks.load)
    tasks/<task>/labels.json      {"task", "kind", "labels": [class ids' names in order], "scheme"}
    tasks/<task>/drops.json       {"task", "counts": {reason: n}, "total", "samples": {reason: [{where, detail}]}}
    runs/<task>/<method>-<init>-s<seed>/
        model/                    best checkpoint: model.save_model folder + tokenizer/tokenizer.model;
                                  meta.json holds task, kind, labels, scheme, arch, max_len, method, init,
                                  seed and, for adapter runs, "adapters" to re-apply
                                  (load with pipeline.finetune.modeling.load)
        result.json               task, kind, method, init ("pretrained" | "scratch"), seed, metric,
                                  best_epoch, best_step, best (validation metrics of the kept weights),
                                  curves (one record per evaluation: epoch, step, train_loss, val_*),
                                  steps, stopped_early, trainable_params, total_params, trainable_share,
                                  labels, scheme, max_len, n_train, n_validation, truncated, seconds
        run_key                   the run's own key: what it read and the settings it used (reuse.run_key)
        run_files.json            the digest of each other file, written last (reuse.seal)
    reports/<task>/<run>.per_label.json   per-label (classification) / per-entity-type (tagging) P/R/F1
    reports/<task>/<run>.confusion.png    classification runs: validation confusion matrix
    reports/summary.json                  the returned stats

Runs: every method in ``methods`` from the pretrained weights, and with ``baseline`` full fine-tuning
from random init (``full-scratch-s<seed>``), for every seed. A run a killed stage finished is kept, not
retrained, while it holds this run's key and its files match its ``run_files.json``; a run another published
finetune output made from the same inputs and settings (its ``run_key``, ``pipeline.finetune.reuse``) is linked
in, not retrained. Before publishing, every run kept or linked in is checked against its ``run_files.json``
again (a run trained by the stage has files of its own).
Stats: ``<task>.<method>.<init>.s<seed>.val_<metric>``,
``...best_epoch``, ``...trainable_params``, medians over seeds, ``<task>.<method>.val_gain_over_scratch``,
and per task the split sizes, truncation and drop counts.
"""
from __future__ import annotations

from typing import Any

from pipeline.finetune.config import FinetuneConfig
from pipeline.stage import StageContext

# 2: pooling auto = mean for decoders; 3: LoRA on the MLP projections too by default (adapter_init, kaiming
# by default, joined the config later: the config part of every key changed with it); 4: threads auto = the
# cores shared out among a task's runs, which train in parallel (a run's thread count changes float rounding);
# 5: classification macro-F1 over the labels in gold or predictions; 6: a two-stage run's result says which stage
# its kept checkpoint is from (best_stage), and the task head is an option (head)
VERSION = "6"
__all__ = ["VERSION", "FinetuneConfig", "run", "check", "key_config", "unused_settings"]


# settings that only a method reads: left out of the key when no run uses that method
LORA_KEYS = ("lora_r", "lora_alpha", "lora_dropout", "lora_plus", "lora_targets")
ADAPTER_KEYS = ("adapter_bottleneck", "adapter_where", "adapter_init", "adapter_form", "adapter_scale")


def key_config(cfg: FinetuneConfig, run_cfg: Any = None) -> dict[str, Any]:
    """The config in the stage's key, without the settings of methods no run uses (``methods: [full]`` with
    another ``lora_r`` retrains nothing), and ``max_len`` as the stage uses it: at most the trunk's block size."""
    from pipeline.configtypes import to_dict
    unused = unused_settings(cfg.trains(), "two_stage" in cfg.methods)
    unused += ["log_checkpoints"]  # what the stage's MLflow run holds, not what the stage writes
    d = {k: v for k, v in to_dict(cfg).items() if k not in unused}
    if cfg.grad_accum > 1:  # an epoch's short last step is a mean over its own micro-batches (once under-scaled)
        d["grad_accum_last"] = "mean"
    return d if run_cfg is None else {**d, "max_len": min(cfg.max_len, run_cfg.pretrain.model.block_size)}


def unused_settings(uses: set[str], two_stage: bool) -> list[str]:
    """The settings no run reads when the runs train ``uses`` (``FinetuneConfig.trains``) and, with
    ``two_stage``, a two-stage run is among them (``pipeline.finetune.reuse`` asks this of one run)."""
    unused = ([] if "lora" in uses else list(LORA_KEYS)) + ([] if "adapter" in uses else list(ADAPTER_KEYS))
    unused += [] if uses & {"lora", "adapter"} else ["peft_lr", "peft_norms"]
    return unused + ([] if two_stage else ["head_epochs", "then"])


def check(run_cfg: Any, root: Any) -> None:
    """At planning: the fine-tuning options against the trunk that ``pretrain.model`` describes (the stage
    checks them again against the model it gets); and each files task read, so that one that cannot train (no
    usable rows, one label, no entity) stops the run before pretraining: decontaminate reads the tasks too, but
    a cached decontaminate (its key leaves out a train file its splits do not depend on) reads nothing."""
    from dataclasses import asdict

    from model import ModelConfig
    from pipeline.configtypes import ConfigError
    from pipeline.finetune.modeling import check_trunk_options
    from pipeline.pretrain import check_device
    from pipeline.tasks import load_task
    check_device(run_cfg.finetune.device, "finetune.device")
    trunk = ModelConfig(vocab_size=run_cfg.tokenize.vocab_size, **asdict(run_cfg.pretrain.model))
    check_trunk_options(trunk, run_cfg.finetune)
    for task in run_cfg.tasks.tasks:
        if task.source == "files":
            try:
                load_task(task, root)
            except (ValueError, RecursionError) as e:  # (TaskError is a ValueError; a JSON array nested too deep)
                raise ConfigError(f"tasks.tasks[{task.name}]: {e}") from None


def run(cfg: FinetuneConfig, ctx: StageContext) -> dict[str, Any]:
    from pipeline.finetune.stage import run_stage
    return run_stage(cfg, ctx)
