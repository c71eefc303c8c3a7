"""Evaluate stage: one report of what the pipeline produced.

- Language model (``ctx.input("model")``, scored on ``ctx.input("tokens")``'s validation split and on
  ``extra_texts``): loss, perplexity and bits per byte for a causal LM; masked-LM loss and accuracy for an
  encoder. Next to it, the unigram baseline (train-split token frequencies) on the same validation targets.
- Tasks (``ctx.input("finetune")``): every fine-tuned run on its test split (accuracy and macro-F1, or
  entity-level precision / recall / F1), and the gain from pretraining (pretrained − scratch per task and
  method, mean and standard deviation over seeds).
- ``reports/report.md`` (Markdown tables, with the keys of the corpus, tokenizer and model behind every
  figure and the decontamination count) and ``reports/report.json`` (the same figures). The returned stats
  are the headline figures.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any


from model import MaskedLM, Seq2SeqLM, load_meta, load_model, param_count
from pipeline.evaluate import lm, unigram
from pipeline.evaluate.config import EvaluateConfig
from pipeline.evaluate.report import markdown
from pipeline.evaluate.scores import gains, score_runs, test_means
from pipeline.loader import TokenShards
from pipeline.pretrain.runtime import setup
from pipeline.stage import StageContext
from pipeline.tasks import SPLITS
from pipeline.tokenize.tokenizer import Tokenizer

from pipeline.evaluate import VERSION, extra_text  # noqa: E402  (one definition, in the package)
__all__ = ["VERSION", "EvaluateConfig", "run"]


def resolve_texts(cfg: EvaluateConfig, root: Path) -> list[tuple[str, Path]]:
    """(name, path) of each extra text; a missing, empty or undecodable file fails before any work, naming
    the key."""
    out = []
    for i, rel in enumerate(cfg.extra_texts):
        path = extra_text(root, rel, i)
        name = re.sub(r"[^A-Za-z0-9]+", "_", f"{path.parent.name}/{path.stem}").strip("_")
        taken = {n for n, _ in out}
        out.append((name if name not in taken else f"{name}_{i}", path))
    return out


def _provenance(ctx: StageContext, model_dir: Path, n_params: int) -> dict[str, Any]:
    artifacts = []
    if "decontaminate" in ctx.inputs:
        m = ctx.input("decontaminate")
        artifacts.append({"what": "corpus", "stage": m.stage, "key": m.key,
                          "note": ", ".join(f"{k}: {v}" for k, v in sorted({**m.inputs, **m.sources}.items()))})
    tokens = ctx.input("tokens")
    artifacts.append({"what": "tokenizer + token shards", "stage": tokens.stage, "key": tokens.key,
                      "note": f"tokenizer {tokens.stats.get('tokenizer_digest', '?')}"})
    model = ctx.input("model")
    parent = model.stats.get("init_from")  # continued pretraining: the model it started from
    artifacts.append({"what": "pretrained model", "stage": model.stage, "key": model.key,
                      "note": f"{load_meta(model_dir)['model_class']}, {n_params:,} parameters"
                              + (f", continued from {parent}" if parent else "")})
    if "finetune" in ctx.inputs:
        m = ctx.input("finetune")
        artifacts.append({"what": "task models", "stage": m.stage, "key": m.key, "note": ""})
    return {"artifacts": artifacts}


def _language_model(cfg: EvaluateConfig, ctx: StageContext, model_dir: Path) -> tuple[dict[str, Any], int]:
    texts = resolve_texts(cfg, ctx.root)
    model, mcfg = load_model(model_dir)
    rt = setup(cfg.device, cfg.dtype, cfg.threads, key="evaluate.device")
    model.to(rt.device)
    tok = Tokenizer.from_dir(model_dir)
    tokens = ctx.input("tokens").path
    val, train = TokenShards(tokens, "val"), TokenShards(tokens, "train")
    # the masked LM's eval mask rate, or the encoder-decoder's span-corruption noise (spans of evaluate.mean_span)
    masked = cfg.mask_rate if isinstance(model, (MaskedLM, Seq2SeqLM)) else None
    T, B = mcfg.block_size, cfg.batch_size
    limit = lm.n_batches(cfg.max_eval_tokens, T, B)
    t0 = time.perf_counter()
    v = lm.score_lm(model, val, rt, T, B, limit, masked, cfg.mean_span)
    ctx.log.info("validation split: %d tokens scored in %.1fs", v["tokens"], time.perf_counter() - t0)
    logp = unigram.log_probs(unigram.train_counts(train))
    u = unigram.score(logp, unigram.targets(val, cfg.max_eval_tokens if masked else v["tokens"]), val.token_bytes)
    rows = [{"data": "validation split", "scorer": "pretrained model", **v},
            {"data": "validation split", "scorer": "unigram baseline", **u}]
    for name, path in texts:
        t0 = time.perf_counter()
        rows.append({"data": name, "scorer": "pretrained model", "path": str(path),
                     **lm.score_text(model, path, tok, rt, T, B, limit, masked, cfg.mean_span)})
        ctx.log.info("%s: %d tokens scored in %.1fs", path, rows[-1]["tokens"], time.perf_counter() - t0)
    objective = "span" if isinstance(model, Seq2SeqLM) else "masked" if masked else "causal"
    out = {"objective": objective, "rows": rows, "block_size": T,
           "bpb_gain_over_unigram": None if masked else u["bpb"] - v["bpb"],
           **({"mask_rate": masked} if masked else {}),
           **({"mean_span": cfg.mean_span} if isinstance(model, Seq2SeqLM) else {})}
    return out, param_count(model, non_embedding=False)


def _headline(lm_part: dict[str, Any], gain_rows: list[dict[str, Any]], runs: list[dict[str, Any]],
              decont: dict[str, Any] | None) -> dict[str, Any]:
    val, uni, *extra = lm_part["rows"]
    keys = {"causal": ("loss", "ppl", "bpb", "tokens"), "masked": ("loss", "accuracy", "tokens"),
            "span": ("loss", "accuracy", "tokens", "encoder_gain")}[lm_part["objective"]]
    stats: dict[str, Any] = {f"val_{k}": val[k] for k in keys if k in val}
    stats.update(unigram_loss=uni["loss"], unigram_bpb=uni["bpb"])
    if lm_part["bpb_gain_over_unigram"] is not None:
        stats["bpb_gain_over_unigram"] = lm_part["bpb_gain_over_unigram"]
    stats["extra"] = {r["data"]: {k: r[k] for k in keys if k in r} for r in extra}
    gain: dict[str, Any] = {}
    for g in gain_rows:
        if g["gain_mean"] is not None:
            gain.setdefault(g["task"], {}).setdefault(g["method"], {})[g["metric"]] = g["gain_mean"]
        if g.get("gain_ci95"):  # the headline metric's interval: gain.<task>.<method>.<metric>_ci95_lo / _hi
            lo, hi = g["gain_ci95"]
            gain[g["task"]][g["method"]].update({f"{g['metric']}_ci95_lo": lo, f"{g['metric']}_ci95_hi": hi})
    stats.update(test=test_means(runs), gain=gain, runs=len(runs))
    if decont is not None:
        stats["docs_removed"] = decont.get("docs_removed")
    return stats


def _task_data(ctx: StageContext, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per fine-tuned task: the rows each split kept (the finetune stage's counts), the inputs cut at ``max_len``
    (train and validation: the finetune stage's counts; test: the scored runs'), and the rows its files lost, by
    reason, with the file listing them (``tasks/<task>/drops.json``: samples with file and line)."""
    if "finetune" not in ctx.inputs:
        return []
    ft = ctx.input("finetune")
    out = []
    for path in sorted((ft.path / "tasks").glob("*/drops.json")):
        drops = json.loads(path.read_text())
        t = drops["task"]
        cut = {s: ft.stats.get(f"{t}.truncated_{s}") for s in ("train", "validation")}
        cut["test"] = max((r["test_truncated"] for r in runs if r["task"] == t), default=None)
        out.append({"task": t, **{f"n_{s}": ft.stats.get(f"{t}.n_{s}") for s in SPLITS}, "dropped": drops["total"],
                    "dropped_by_reason": drops["counts"], "drops_file": str(path), "truncated": cut})
    return out


def run(cfg: EvaluateConfig, ctx: StageContext) -> dict[str, Any]:
    model_dir = ctx.input("model").path / "model"
    lm_part, n_params = _language_model(cfg, ctx, model_dir)
    units: dict = {}
    runs = score_runs(ctx.input("finetune").path, ctx.extra.get("tasks"), units, ctx.reports) \
        if "finetune" in ctx.inputs else []
    gain_rows = gains(runs, units)
    decont = ctx.input("decontaminate").stats if "decontaminate" in ctx.inputs else None
    report = {"provenance": _provenance(ctx, model_dir, n_params), "decontamination": decont, "lm": lm_part,
              "task_data": _task_data(ctx, runs), "runs": runs, "gains": gain_rows}
    ctx.write_report("report.json", report)
    ctx.write_report("report.md", markdown(report))
    return _headline(lm_part, gain_rows, runs, decont)
