"""The pretraining loop, readable top to bottom. No Prefect, no MLflow: figures go to a Tracker.

Exact resume: batches are a pure function of (seed, step), the checkpoint holds model, optimizer,
RNG state and step, so a run stopped at step k and resumed gives the same losses at every later step
as the uninterrupted run (on CPU, fp32).
"""
from __future__ import annotations

import json
import math
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from model import ModelConfig, build_adamw, device_peak_flops, flops_per_token, load_model, param_count
from model.checkpoint import update_meta
from model.flops import build_for_config, seq2seq_flops
from model.layers import IGNORE_INDEX
from pipeline.configtypes import ConfigError
from pipeline.lm_eval import evaluate_lm
from pipeline.loader import CausalBatches, MaskedBatches, SpanBatches, TokenShards
from pipeline.loader.batches import NotEnoughTokens
from pipeline.loader.spans import lengths, raw_length
from pipeline.pretrain import init_model_dir, state
from pipeline.pretrain.config import PretrainConfig, may_change_when_continuing
from pipeline.pretrain.runtime import Runtime, all_reduce_mean, setup
from pipeline.pretrain.schedule import lr_at
from pipeline.progress import Progress
from pipeline.stage import Diverged, InputGone
from pipeline.tokenize.tokenizer import MODEL_FILE, model_digest
from pipeline.tracking import NullTracker, Tracker

CHECKPOINT, BEST, METRICS = "checkpoint", "model", "reports/metrics.jsonl"


def model_config(cfg: PretrainConfig, vocab_size: int) -> ModelConfig:
    return ModelConfig(vocab_size=vocab_size, **asdict(cfg.model))


def build_model(mcfg: ModelConfig) -> torch.nn.Module:
    """The language model of ``mcfg.arch``: CausalLM, MaskedLM or Seq2SeqLM."""
    return build_for_config(mcfg)


def window_tokens(cfg: PretrainConfig) -> int:
    """The text tokens one row of a batch reads: the block, or span corruption's longer window (``raw_length``)."""
    if cfg.resolved_objective == "span":
        return raw_length(cfg.model.block_size, cfg.mask_rate, cfg.mean_span)
    return cfg.model.block_size


def grad_accum_steps(cfg: PretrainConfig, world: int) -> int:
    if cfg.global_batch_tokens is None:
        return cfg.grad_accum
    per_step = cfg.batch_size * window_tokens(cfg) * world
    return max(1, math.ceil(cfg.global_batch_tokens / per_step))


def make_batches(cfg: PretrainConfig, shards: TokenShards, rt: Runtime):
    """Each step's micro-batch holds every rank's rows; a rank takes its slice, so a DDP run sees
    exactly the data of one process with the same global batch."""
    rows = cfg.batch_size * rt.world
    if cfg.resolved_objective == "causal":
        return CausalBatches(shards, cfg.model.block_size, rows, cfg.seed)
    if cfg.resolved_objective == "span":
        return SpanBatches(shards, cfg.model.block_size, rows, cfg.seed, cfg.mask_rate, cfg.mean_span)
    return MaskedBatches(shards, cfg.model.block_size, rows, cfg.seed, mask_rate=cfg.mask_rate)


def _rows(x: Any, a: int, b: int, device: torch.device) -> Any:
    """Rows a:b of a batch tensor, or of each tensor of a tuple (span corruption's source and decoder input), on
    ``device``."""
    if isinstance(x, tuple):
        return tuple(_rows(t, a, b, device) for t in x)
    return x[a:b].to(device, non_blocking=True)


def train(cfg: PretrainConfig, shards_dir: Path, out: Path, tracker: Tracker | None = None,
          meta: dict[str, Any] | None = None, stop_after: int | None = None,
          root: Path = Path(".")) -> dict[str, Any]:
    """Train into ``out`` (resuming from ``out/checkpoint`` if present); return the final figures.

    ``stop_after`` ends the run after that many steps without finishing (tests of exact resume).
    ``root``: the project folder a relative ``init_from`` is taken from (the stage passes it; the plain
    entry point keeps the current directory).
    """
    tracker = tracker or NullTracker()
    rt = setup(cfg.device, cfg.dtype, cfg.threads)
    train_shards, val_shards = TokenShards(shards_dir, "train"), TokenShards(shards_dir, "val")
    if val_shards.n_tokens < 2:
        raise NotEnoughTokens(f"the val split has {val_shards.n_tokens} token(s): pretraining needs validation text "
                              "(tokenize.val_fraction > 0, and a corpus of more than one document)")
    vocab = int(train_shards.meta["vocab_size"])
    mcfg = model_config(cfg, vocab)
    torch.manual_seed(cfg.seed)
    model = build_model(mcfg)
    if cfg.init_from:
        _init_from(model, mcfg, init_model_dir(cfg.init_from, root), train_shards.meta)
    model.to(rt.device)
    opt = build_adamw(model, cfg.lr, (cfg.beta1, cfg.beta2), cfg.weight_decay)
    accum = grad_accum_steps(cfg, rt.world)
    ckpt = out / CHECKPOINT
    step, best, best_step = 0, math.inf, -1
    best_state: dict[str, torch.Tensor] | None = None  # the kept model's weights, on the CPU
    whole: dict[str, float] | None = None  # the whole val stream's figures of the kept model, when already scored
    if state.is_complete(ckpt):
        resumed = state.load_trainer(ckpt)
        model.load_state_dict(load_model(ckpt, map_location=rt.device)[0].state_dict())
        state.load_optimizer(opt, ckpt, rt.device)
        state.restore_rng(resumed)
        step, best, best_step = resumed["step"], resumed["best_val_loss"], resumed["best_step"]
        if best_step >= 0 and _kept_step(out / BEST) != best_step:
            # the model folder holds another step than the checkpoint's best (a killed run saved a later best
            # after its last checkpoint, or it is gone): the best is chosen again among the evals from here on
            best, best_step = math.inf, -1
        if rt.is_main:
            kept = f"best val loss {best:.4f} at step {best_step}" if best_step >= 0 else "no kept model yet"
            print(f"pretrain: resuming at step {step} of {cfg.max_steps} from {ckpt} ({kept})", file=sys.stderr,
                  flush=True)
    metrics_log = _MetricsLog(out / METRICS, keep_before=step)
    if rt.is_main:  # a resumed run's MLflow run gets the whole curve, not only the steps after the checkpoint
        for record in metrics_log.kept:
            tracker.log_metrics({k: v for k, v in record.items() if k != "step"}, step=record["step"])
    run_model = torch.compile(model) if cfg.compile else model
    if rt.world > 1:
        from torch.nn.parallel import DistributedDataParallel
        run_model = DistributedDataParallel(run_model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
    batches = make_batches(cfg, train_shards, rt)
    tokens_per_step = cfg.batch_size * window_tokens(cfg) * accum * rt.world
    masked = cfg.resolved_objective == "masked"
    flops_tok = flops_per_token(mcfg, cfg.model.block_size)
    if isinstance(batches, SpanBatches):  # per text token: a window's source through the encoder, target the decoder
        flops_tok = seq2seq_flops(mcfg, *lengths(batches.length, cfg.mask_rate, cfg.mean_span)) / batches.length
    peak = device_peak_flops(torch.cuda.get_device_name(rt.device)) if rt.device.type == "cuda" else None
    extra_meta = {**(meta or {}), "objective": cfg.resolved_objective}
    progress = Progress("pretrain", total=cfg.max_steps, unit="steps", enabled=rt.is_main, start=step)
    t_start, t_window, tok_window = time.perf_counter(), time.perf_counter(), 0
    last_eval: dict[str, float] = {}
    tok_s = 0.0
    steps_this_run = 0
    model.train()
    while step < cfg.max_steps:
        lr = lr_at(step, lr=cfg.lr, max_steps=cfg.max_steps, warmup_steps=cfg.warmup_steps,
                   schedule=cfg.schedule, min_lr_ratio=cfg.min_lr_ratio, decay_frac=cfg.decay_frac)
        for g in opt.param_groups:
            g["lr"] = lr
        loss_sum = torch.zeros((), device=rt.device)
        micros = [batches.get(step * accum + micro) for micro in range(accum)]
        a, b = rt.rank * cfg.batch_size, (rt.rank + 1) * cfg.batch_size
        micros = [(_rows(x, a, b, rt.device), _rows(y, a, b, rt.device)) for x, y in micros]
        weights = token_weights([y for _, y in micros], rt) if masked else [None] * accum
        for micro, ((x, y), w) in enumerate(zip(micros, weights)):
            sync = rt.world == 1 or micro == accum - 1
            ctx = run_model.no_sync() if not sync else _null()
            with ctx, rt.autocast():
                _, loss = run_model(*x, y) if isinstance(x, tuple) else run_model(x, y)
                (loss / accum if w is None else loss * w).backward()
            loss_sum += loss.detach() if w is None else loss.detach() * (w * accum)
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip) if cfg.grad_clip else None
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        steps_this_run += 1
        tok_window += tokens_per_step
        train_loss = float(all_reduce_mean(loss_sum / accum, rt))  # one host sync per step
        record = {"step": step, "train_loss": train_loss, "lr": lr}
        if grad_norm is not None:
            record["grad_norm"] = float(grad_norm)
        if step % cfg.log_every == 0 or step == cfg.max_steps:
            now = time.perf_counter()
            tok_s = tok_window / max(now - t_window, 1e-9)
            t_window, tok_window = now, 0
            record["tokens_per_s"] = tok_s
            record["achieved_tflops"] = tok_s * flops_tok / 1e12
            if peak:  # tok_s counts every rank's tokens; peak is one device's
                record["mfu"] = tok_s * flops_tok / (peak * rt.world)
        if step % cfg.eval_every == 0 or step == cfg.max_steps:
            # every eval scores the same leading val windows (``eval_batches``), so that the best is chosen among
            # figures of the same tokens; the model kept is then scored on the whole val stream (``_score_kept``).
            # A run's one eval (at its end) has nothing to choose among: the whole stream at once.
            only = best_step < 0 and step == cfg.max_steps
            last_eval = evaluate_lm(model, val_shards, cfg, rt, max_batches=None if only else cfg.eval_batches)
            whole = last_eval if only else None
            if not last_eval:
                raise NotEnoughTokens(f"the val split ({val_shards.n_tokens:,} tokens) has no token to score: give "
                                      "the corpus more documents, or tokenize.val_fraction a larger share")
            record.update({f"val_{k}": v for k, v in last_eval.items()})
            if last_eval["loss"] < best:
                best, best_step = last_eval["loss"], step
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
                if rt.is_main:
                    _save_best(out / BEST, model, mcfg, shards_dir, {**extra_meta, "step": step, **{
                        f"val_{k}": v for k, v in last_eval.items()}})
        if rt.is_main:
            metrics_log.write(record)
            tracker.log_metrics({k: v for k, v in record.items() if k != "step"}, step=step)
        for name, value in (("training", train_loss), ("validation", last_eval.get("loss", 0.0))):
            if not math.isfinite(value):
                progress.close()
                if rt.is_main:  # nothing to resume: from its checkpoint, the same config diverges at the same step
                    for part in (ckpt, out / BEST, out / METRICS):
                        shutil.rmtree(part) if part.is_dir() else part.unlink(missing_ok=True)
                raise Diverged(f"pretrain: the {name} loss is {value} at step {step} (lr {lr:.2e}): the run diverged; "
                               "lower pretrain.lr, or raise pretrain.warmup_steps or set pretrain.grad_clip")
        progress.update(1, extra=f"loss {train_loss:.4f}  {tok_s:,.0f} tok/s  lr {lr:.2e}")
        done = step == cfg.max_steps
        if rt.is_main and (step % cfg.checkpoint_every == 0 or done or stop_after == steps_this_run):
            state.save_state(ckpt, model, mcfg, opt, {"step": step, "best_val_loss": best, "best_step": best_step},
                             extra_meta)
        if stop_after is not None and steps_this_run >= stop_after and not done:
            progress.close()
            return {"stopped_at": step}
    progress.close()
    kept_eval = whole or _score_kept(model, best_state, best_step, step, out, val_shards, cfg, rt)
    if rt.is_main:  # the kept model's meta: its whole-split figures, and the one it was chosen by
        update_meta(out / BEST, {"select_val_loss": best, **{f"val_{k}": v for k, v in kept_eval.items()}})
        tracker.log_metrics({f"kept_val_{k}": v for k, v in kept_eval.items()}, step=step)
    seconds = time.perf_counter() - t_start
    tracker.flush()
    stats = {"steps": step, "tokens": step * tokens_per_step, "grad_accum": accum, "world_size": rt.world,
             "params": param_count(model), "params_total": param_count(model, non_embedding=False),
             "flops_per_token": flops_tok, "final_train_loss": train_loss if steps_this_run else float("nan"),
             "tokens_per_s": tok_s, "achieved_tflops": tok_s * flops_tok / 1e12,
             "best_val_loss": kept_eval["loss"], "best_step": best_step, "select_val_loss": best,
             "train_seconds": seconds, "device": str(rt.device), "dtype": rt.dtype,
             **{f"kept_val_{k}": v for k, v in kept_eval.items()}}  # (val_*: the evals' curve, on eval_batches)
    if peak:
        stats["mfu"] = tok_s * flops_tok / (peak * rt.world)
    if rt.is_main:
        from pipeline.pretrain.plots import loss_curve
        loss_curve(out / METRICS, out / "reports" / "loss_curve.png")
    return stats


def token_weights(targets: list[torch.Tensor], rt: Runtime) -> list[float]:
    """The factor on each micro-batch's mean masked-LM loss that makes the step's gradient the mean over
    every masked token of the step (all micro-batches, all ranks), as one big batch gives: n_i x world / N,
    n_i this micro-batch's masked tokens, N the step's (DDP then averages over ranks). A plain 1 / accum
    would weigh a token of a micro-batch with few masks more than one with many."""
    counts = [int((y != IGNORE_INDEX).sum()) for y in targets]
    total = float(all_reduce_mean(torch.tensor(float(sum(counts)), device=targets[0].device), rt)) * rt.world
    return [n * rt.world / max(total, 1.0) for n in counts]


def _kept_step(folder: Path) -> int | None:
    """The step of the model saved in ``folder`` (its meta.json), or None."""
    try:
        return int(json.loads((folder / "meta.json").read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _score_kept(model: torch.nn.Module, best_state: dict[str, torch.Tensor] | None, best_step: int, step: int,
                out: Path, val_shards: TokenShards, cfg: PretrainConfig, rt: Any) -> dict[str, float]:
    """The kept model (the best by the figures of ``eval_batches`` leading val windows, every eval the same ones)
    scored on the whole val stream: the figures the stage reports of the model it publishes. ``model`` takes its
    weights (from memory, or from ``out/model`` when a resumed run found the training done)."""
    if best_step != step:
        weights = best_state if best_state is not None else load_model(out / BEST, map_location="cpu")[0].state_dict()
        model.load_state_dict(weights)
    return evaluate_lm(model, val_shards, cfg, rt, max_batches=None)


class _null:
    def __enter__(self): return self
    def __exit__(self, *a): return False


def _init_from(model: torch.nn.Module, mcfg: ModelConfig, folder: Path,
               shards_meta: dict[str, Any]) -> None:
    """Continued pretraining: start from a saved model of the same architecture and tokenizer. The same
    vocabulary size is not enough: another tokenizer's ids mean other pieces."""
    src, src_cfg = load_model(folder)
    free = may_change_when_continuing(mcfg)  # (dropout; a rotary model's block_size: the same weights)
    diff = {k: (v, getattr(mcfg, k)) for k, v in src_cfg.to_dict().items() if getattr(mcfg, k) != v and k not in free}
    if diff:
        raise ConfigError(f"pretrain.init_from: {folder} has a different model config {diff}; "
                          "continued pretraining needs the same architecture and tokenizer")
    saved_tok = folder / "tokenizer" / MODEL_FILE
    ours = (shards_meta.get("tokenizer") or {}).get("digest")
    if saved_tok.is_file() and ours is not None:
        theirs = model_digest(saved_tok.read_bytes())
        if theirs != ours:
            raise ConfigError(f"pretrain.init_from: {folder} was trained with another tokenizer (digest {theirs}, "
                              f"these token shards: {ours}); set tokenize.tokenizer_path to {saved_tok} to "
                              "tokenize the corpus with the model's own tokenizer")
    model.load_state_dict(src.state_dict())


def _save_best(folder: Path, model: torch.nn.Module, mcfg: ModelConfig, shards_dir: Path, meta: dict) -> None:
    from model import save_model
    tmp = folder.with_name(f".{folder.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    save_model(model, mcfg, tmp, extra_meta=meta)
    tok = shards_dir / "tokenizer"
    if not (tok / MODEL_FILE).is_file() or not (shards_dir / "meta.json").is_file():
        # a model without its tokenizer is no pretrained model: nothing downstream could read it
        raise InputGone(f"pretrain: the token shards' tokenizer or meta.json is gone from {shards_dir} (removed "
                        "while the stage ran?); run again without --stage / --from (or first with --until tokenize) "
                        "to rebuild them")
    shutil.copytree(tok, tmp / "tokenizer")
    shutil.copy(shards_dir / "meta.json", tmp / "tokens_meta.json")
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)


class _MetricsLog:
    """Per-step figures as JSON lines; on resume, lines past the checkpoint are dropped first."""

    def __init__(self, path: Path, keep_before: int):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = path.read_text().splitlines() if path.exists() else []
        kept = [ln for ln in lines if ln.strip() and _step_of(ln) is not None and _step_of(ln) <= keep_before]
        path.write_text("".join(ln + "\n" for ln in kept))
        self.kept: list[dict[str, Any]] = [json.loads(ln) for ln in kept]  # the steps a resumed run does not redo

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def _step_of(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None
