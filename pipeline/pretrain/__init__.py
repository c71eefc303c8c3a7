"""Pretrain stage: a GPT-style decoder (causal LM), BERT-style encoder (masked LM) or T5-style encoder-decoder
(span corruption) on the token shards.

Output: ``model/`` (the best checkpoint by validation loss, with its tokenizer: the "pretrained
model" that fine-tuning and evaluation use), ``checkpoint/`` (the last complete training state:
weights, optimizer, RNG, step; an interrupted run resumes from it, and continued pretraining can
start from it), ``reports/metrics.jsonl`` and ``reports/loss_curve.png``.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pipeline.configtypes import BY_CONTENT, ConfigError, config_path
from pipeline.pretrain.config import ModelSection, PretrainConfig, may_change_when_continuing
from pipeline.stage import StageContext
from pipeline.store import files_fingerprint

# 2: masked-LM validation figures by the one definition of pipeline.lm_eval; 3: cosine ends at min_lr, a masked-LM
# step weighs every masked token alike across micro-batches; 4: the masked-LM validation masks drawn per window, as
# the evaluate stage draws them (figures that do not depend on the batch size)
VERSION = "4"
REGISTER_MODEL = "lmforge-pretrained"  # the runner registers ``model/`` under this name, with lineage tags
__all__ = ["VERSION", "PretrainConfig", "ModelSection", "run", "fingerprint", "init_model_dir", "check", "key_config"]
# What ``model.load_model`` reads from a model folder (model.checkpoint's WEIGHTS, CONFIG, META; named here
# so that planning does not import torch).
MODEL_FILES = ("model_config.json", "model.safetensors", "meta.json")
MASK_RATE_DEFAULT = 0.15  # PretrainConfig.mask_rate's default (checked in the tests)


def key_config(cfg: PretrainConfig, run_cfg: Any = None) -> dict[str, Any]:
    """The config in the stage's key, without ``checkpoint_every``: resume is exact, so how often the training
    state is saved changes no output; nor the encoder-decoder's settings for another architecture, nor the
    masking rate of a causal LM. ``init_from``
    counts by content (``fingerprint``), not by how its path is spelled: ``./m``, ``m``, an absolute path or an
    identical copy elsewhere are one key."""
    from pipeline.configtypes import to_dict
    d = {k: v for k, v in to_dict(cfg).items() if k != "checkpoint_every"}
    if cfg.resolved_objective != "span":  # what only span corruption reads (keys made before it existed stand)
        d.pop("mean_span")
        d["model"] = {k: v for k, v in d["model"].items() if k != "n_dec_layer"}
    if cfg.resolved_objective == "causal":  # no masking: the rate counts as its default (the keys made stand)
        d["mask_rate"] = MASK_RATE_DEFAULT
    return d if cfg.init_from is None else {**d, "init_from": BY_CONTENT}


def init_model_dir(init_from: str, root: Path) -> Path:
    """The model folder ``pretrain.init_from`` names, relative to the project root like every path in a
    config; a ConfigError naming the key when it holds no saved model."""
    folder = config_path(root, init_from).resolve()
    missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
    if missing:
        inside = folder / "model"  # a pretrain output folder named instead of its model/
        hint = f"; the model of that output is in {inside}" if all((inside / n).is_file() for n in MODEL_FILES) else ""
        raise ConfigError(f"pretrain.init_from: no model at {folder} ({', '.join(missing)} missing){hint}")
    return folder


def fingerprint(cfg: PretrainConfig, root: Path) -> str | None:
    """What the ``init_from`` model's weights and config hold now (content digests): another checkpoint in that
    folder means a new key. None without ``init_from`` (nothing outside the store: the key stays as it
    was). A missing model is a ConfigError here, at planning, not when the stage starts."""
    if cfg.init_from is None:
        return None
    folder = init_model_dir(cfg.init_from, root)
    _check_init_model(cfg, folder)
    # the weights and their config, not meta.json: its lineage (paths, folder keys) names where the model came
    # from, which would make identical weights a new key on another machine
    return files_fingerprint(folder / name for name in MODEL_FILES if name != "meta.json")


def _check_init_model(cfg: PretrainConfig, folder: Path) -> None:
    """Continued pretraining needs the saved model's architecture: checked here, from its config file, so
    a mismatch stops the run at planning (the vocabulary and tokenizer are checked when the stage starts,
    against the token shards)."""
    try:
        saved = json.loads((folder / MODEL_FILES[0]).read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"pretrain.init_from: {folder / MODEL_FILES[0]} is not a model config ({e})") from None
    if not isinstance(saved, dict):
        raise ConfigError(f"pretrain.init_from: {folder / MODEL_FILES[0]} is not a model config (a JSON "
                          f"{type(saved).__name__})")
    task = _task_model(folder)
    if task:
        raise ConfigError(f"pretrain.init_from: {folder} is a fine-tuned model of task {task!r} (a trunk with a task "
                          "head), not a pretrained LM; continued pretraining starts from a pretrain stage's model/ "
                          "folder")
    free = may_change_when_continuing(cfg.model)
    diff = {k: (saved.get(k), v) for k, v in asdict(cfg.model).items() if saved.get(k) != v and k not in free}
    if diff:
        shown = ", ".join(f"{k}: {a!r} there, {b!r} here" for k, (a, b) in diff.items())
        raise ConfigError(f"pretrain.init_from: {folder} has another model ({shown}); continued pretraining "
                          f"needs the same pretrain.model settings but {' and '.join(sorted(free))}")


def _task_model(folder: Path) -> str | None:
    """The task a fine-tuned model folder was trained for (its meta.json names it), None for an LM."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (ValueError, UnicodeDecodeError):
        return None
    return str(meta["task"]) if isinstance(meta, dict) and meta.get("task") else None


def check_device(name: str, key: str) -> None:
    """At planning: a device this machine lacks (found when the stage started, after the stages before it)."""
    if name in ("cuda", "mps"):
        from pipeline.pretrain.runtime import device_error
        if why := device_error(name, key):
            raise ConfigError(why)


def check(run_cfg: Any, root: Path) -> None:
    """At planning: the device; a validation split to score; the sentinels span corruption needs (the trained
    tokenizer's or the reused one's); continued pretraining from a model with a reused tokenizer that is not the
    model's own (found when pretraining started, after tokenize had run). Without ``tokenize.tokenizer_path`` the
    tokenizer is trained, and only the stage can compare it."""
    cfg, tok = run_cfg.pretrain, run_cfg.tokenize
    check_device(cfg.device, "pretrain.device")
    if tok.val_fraction == 0:  # (found after tokenize had run)
        raise ConfigError("tokenize.val_fraction: got 0, allowed: more than 0 when the run pretrains (its validation "
                          "loss picks the best checkpoint and is the report's figure); 0 only with --until tokenize")
    if cfg.resolved_objective == "span":
        length, need, have, reused = span_sentinels(cfg.model.block_size, cfg.mask_rate, cfg.mean_span, tok, root)
        why = (f"span corruption of {length}-token windows (pretrain.model.block_size {cfg.model.block_size}, "
               f"mask_rate {cfg.mask_rate}, mean_span {cfg.mean_span}: {need} spans, a sentinel each)")
        if need > have and reused is None:
            raise ConfigError(f"tokenize.sentinels: got {have}, allowed: at least {need} for {why}")
        if need > have:
            raise ConfigError(f"tokenize.tokenizer_path: {reused} has {have} sentinel(s); {why} needs {need}: use a "
                              "tokenizer with more, or train one (tokenize.sentinels) without tokenize.tokenizer_path")
    if not (cfg.init_from and tok.tokenizer_path):
        return
    from pipeline.tokenize import resolve_model_path
    from pipeline.tokenize.tokenizer import model_digest
    own = init_model_dir(cfg.init_from, root) / "tokenizer" / "tokenizer.model"
    reused = resolve_model_path(tok.tokenizer_path, root)
    if own.is_file() and own.resolve() != reused.resolve() and \
            model_digest(own.read_bytes()) != model_digest(reused.read_bytes()):  # as the trainer
        raise ConfigError(f"tokenize.tokenizer_path: {reused} is not the tokenizer of pretrain.init_from's model "
                          f"({own}); continued pretraining needs that one")


def span_sentinels(block_size: int, mask_rate: float, mean_span: float, tok: Any,
                   root: Path) -> tuple[int, int, int, Path | None]:
    """Span corruption's sentinels at planning: (window length, sentinels its spans need, sentinels the run's
    tokenizer has, the reused tokenizer's file or None). A trained tokenizer has ``tokenize.sentinels``; a reused
    one, those of the file ``tokenize.tokenizer_path`` names (read here: a small file)."""
    from pipeline.loader.spans import sentinels_needed
    length, need = sentinels_needed(block_size, mask_rate, mean_span)
    if not tok.tokenizer_path:
        return length, need, tok.sentinels, None
    from pipeline.tokenize import resolve_model_path
    from pipeline.tokenize.tokenizer import Tokenizer
    path = resolve_model_path(tok.tokenizer_path, root)
    return length, need, len(Tokenizer(path.read_bytes()).sentinel_ids), path


def run(cfg: PretrainConfig, ctx: StageContext) -> dict[str, Any]:
    from pipeline.pretrain.trainer import train
    tokens = ctx.input("tokens")
    corpus = tokens.sources.get("docs") or tokens.inputs.get("docs", "")  # the decontaminate folder tokenize read
    lineage = {"tokenizer_key": tokens.key, "corpus_key": corpus, "pretrain_key": ctx.key}
    if cfg.init_from:  # continued pretraining: the model it started from
        lineage["init_from"] = str(init_model_dir(cfg.init_from, ctx.root))
    stats = train(cfg, tokens.path, ctx.out, ctx.tracker, meta=lineage, root=ctx.root)
    ctx.tracker.log_artifact(ctx.out / "model", "model")
    return {**stats, **lineage}
