"""Tokenize stage: kept documents → sentencepiece model + train/val token shards + ``meta.json``.

Phases: plan the split (keys and sizes only) → train the tokenizer on a sample of the train split, or
copy ``tokenizer_path`` → encode each split into shards → figures from the written files → ``meta.json``
and reports. A killed run keeps its tokenizer and finished shards and resumes with the next shard; the
output is byte-identical to an uninterrupted run and independent of ``ctx.workers``.

Output (``ctx.out``)::

    tokenizer/tokenizer.model   sentencepiece model (its blake2b digest is the tokenizer's identity)
    tokenizer/tokenizer.vocab   piece<TAB>score per id
    tokenizer/token_bytes.npy   UTF-8 bytes per id (0 for specials), for bits per byte
    tokenizer/training.json     how the model was made (options, sample, coverage) or where it came from
    train/part-00000.arrow ...  token shards (see tokenize.shards)
    val/part-00000.arrow ...
    meta.json                   vocab, dtype, special ids, counts per split, tokenizer digest and options
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.stage import StageContext
from pipeline.store import Manifest, atomic_write_text
from pipeline.tokenize import resolve_model_path, train
from pipeline.tokenize.config import TokenizeConfig
from pipeline.tokenize.encode import write_splits
from pipeline.tokenize.reports import write_reports
from pipeline.tokenize.shards import META_FILE, TOKEN_BYTES_FILE, TOKENIZER_DIR, token_dtype
from pipeline.tokenize.split import SPLITS, SplitPlan, plan_split
from pipeline.tokenize.stats import shard_stats
from pipeline.tokenize.tokenizer import MODEL_FILE, VOCAB_FILE, Tokenizer, model_digest

FORMAT = "lmforge-token-shards/1"
MODEL_REL = f"{TOKENIZER_DIR}/{MODEL_FILE}"
VOCAB_REL = f"{TOKENIZER_DIR}/{VOCAB_FILE}"
TRAINING_REL = f"{TOKENIZER_DIR}/training.json"


class TokenizeError(ValueError):
    """The input cannot be tokenized (no documents); the message names the upstream stage."""


def _write_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # np.save(path) would append ".npy" to the temporary name
        np.save(f, array)


def _source_options(path: Path, model: bytes) -> dict:
    """The training options of a reused model, when it comes from a tokenize output (same digest)."""
    try:
        meta = json.loads((path.parent.parent / META_FILE).read_text())["tokenizer"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    same = meta.get("digest") == model_digest(model)
    return meta.get("options", {}) if same else {}


def _new_tokenizer(cfg: TokenizeConfig, ctx: StageContext, folder: Path, plan: SplitPlan) -> tuple[bytes, dict]:
    if cfg.tokenizer_path is not None:
        path = resolve_model_path(cfg.tokenizer_path, ctx.root)
        model = path.read_bytes()
        size = Tokenizer(model).vocab_size
        if size != cfg.vocab_size:  # (the key leaves the training options out: they change nothing here)
            ctx.note(f"reusing the tokenizer {path} ({size:,} pieces): tokenize.vocab_size={cfg.vocab_size} and the "
                     "other training options (model_type, character_coverage, ...) are not used")
        return model, {"trained": False, "source": str(path), "options": _source_options(path, model)}
    lines = train.training_sample(folder, plan, cfg)
    coverage, keep, coverage_info = train.auto_coverage(lines, cfg)
    if cfg.character_coverage is not None:
        coverage = cfg.character_coverage
    elif keep is not None:
        lines = train.keep_only(lines, keep)
    options = train.trainer_options(cfg, coverage)
    ctx.note(f"training a {cfg.model_type} tokenizer ({options['vocab_size']:,} pieces) on {len(lines):,} lines, "
             f"{sum(map(len, lines)) / 1e6:.1f}M characters")
    model = train.train_model(lines, options, cfg.seed)
    if (size := Tokenizer(model).vocab_size) < options["vocab_size"]:  # (sentencepiece's soft limit: no error)
        ctx.note(f"the corpus holds {size:,} pieces, fewer than tokenize.vocab_size={options['vocab_size']:,}: "
                 f"the vocabulary is {size:,}")
    sample = {"lines": len(lines), "chars": sum(map(len, lines)), "sample_bytes_limit": cfg.sample_bytes,
              "seed": cfg.seed}
    return model, {"trained": True, "options": options, "sample": sample, "coverage": coverage_info,
                   "coverage_auto": cfg.character_coverage is None}


def prepare_tokenizer(cfg: TokenizeConfig, ctx: StageContext, folder: Path, plan: SplitPlan) -> tuple[Tokenizer, dict]:
    """Train (or copy) the model once; a resumed run loads the one it wrote."""
    if not ctx.shard_done(MODEL_REL):
        model, info = _new_tokenizer(cfg, ctx, folder, plan)
        ctx.write_shard(TRAINING_REL, lambda tmp: tmp.write_text(json.dumps(info, indent=1, ensure_ascii=False)))
        ctx.write_shard(MODEL_REL, lambda tmp: tmp.write_bytes(model))
    tok = Tokenizer(ctx.out / MODEL_REL)
    info = json.loads((ctx.out / TRAINING_REL).read_text())
    if tok.eos_id is None:
        raise TokenizeError(f"tokenizer {info.get('source', MODEL_REL)} has no EOS id; documents need one")
    if not ctx.shard_done(VOCAB_REL):
        ctx.write_shard(VOCAB_REL, lambda tmp: tmp.write_text(train.vocab_text(tok)))
    if not ctx.shard_done(TOKEN_BYTES_FILE):
        ctx.write_shard(TOKEN_BYTES_FILE, lambda tmp: _write_npy(tmp, tok.token_bytes()))
    return tok, info


def build_meta(cfg: TokenizeConfig, docs: Manifest, plan: SplitPlan, tok: Tokenizer, info: dict,
               stats: dict) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "tokenizer": {"model": MODEL_REL, "vocab": VOCAB_REL, "token_bytes": TOKEN_BYTES_FILE,
                      "digest": tok.digest, "digest_algorithm": "blake2b-128", "vocab_size": tok.vocab_size,
                      "model_type": tok.model_type,
                      "trained": info["trained"], "source": info.get("source"),
                      "options": info.get("options", {}), "exact_roundtrip_escapes": tok.has_byte_fallback,
                      "chunk_chars": tok.chunk_chars},
        "vocab_size": tok.vocab_size,
        "dtype": token_dtype(tok.vocab_size).name,
        "special_ids": tok.special_ids,
        "sentinel_ids": tok.sentinel_ids,
        "all_special_ids": tok.all_special_ids,
        "eos_after_each_document": True,
        "split": {"seed": cfg.seed, "val_fraction": cfg.val_fraction, "key": plan.key, "note": plan.note},
        "splits": {s: stats["splits"][s] for s in SPLITS},
        "source": {"stage": docs.stage, "key": docs.key},
    }


def run(cfg: TokenizeConfig, ctx: StageContext) -> dict[str, Any]:
    seconds: dict[str, float] = {}
    cpu_seconds: dict[str, float] = {}  # this process's CPU time: robust to other load on a shared box
    t, c = time.perf_counter(), time.process_time()

    def lap(name: str) -> None:
        nonlocal t, c
        now, now_cpu = time.perf_counter(), time.process_time()
        seconds[name], cpu_seconds[name] = round(now - t, 4), round(now_cpu - c, 4)
        t, c = now, now_cpu

    docs = ctx.input("docs")
    plan = plan_split(docs.path, cfg.seed, cfg.val_fraction)
    if plan.n_docs == 0:
        raise TokenizeError(f"no documents to tokenize: upstream stage {docs.stage!r} (key {docs.key}) "
                            f"has no kept documents in {docs.path}")
    if plan.docs("val") == 0 and cfg.val_fraction > 0:
        raise TokenizeError(
            f"the validation split is empty: {plan.note} (of {plan.n_docs} document(s) kept upstream). Pretraining "
            "needs validation text: its loss picks the best checkpoint and is the report's figure. Give the corpus "
            "more documents: a text source of one or a few files can hold one document per paragraph "
            "(ingest.sources[...].split: paragraph), or add sources; when one near-duplicate cluster holds them "
            "all, a stricter dedup.threshold")
    lap("plan")
    tok, info = prepare_tokenizer(cfg, ctx, docs.path, plan)
    lap("tokenizer")
    encoded = write_splits(ctx, docs.path, plan, tok, cfg.shard_tokens)
    lap("encode")
    stats = shard_stats(ctx.out, tok)
    lap("stats")
    meta = build_meta(cfg, docs, plan, tok, info, stats)
    atomic_write_text(ctx.out / META_FILE, json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    write_reports(ctx, {**stats, "split_note": plan.note, "tokenizer": info}, tok)
    lap("reports")
    sp = stats["splits"]
    return {
        "tokens_train": sp["train"]["tokens"], "tokens_val": sp["val"]["tokens"],
        "docs_train": sp["train"]["documents"], "docs_val": sp["val"]["documents"],
        "bytes_train": sp["train"]["bytes"], "bytes_val": sp["val"]["bytes"],
        "shards_train": len(sp["train"]["shards"]), "shards_val": len(sp["val"]["shards"]),
        "vocab_size": tok.vocab_size, "dtype": meta["dtype"], "tokenizer_digest": tok.digest,
        "bytes_per_token": stats["bytes_per_token"], "vocab_coverage": stats["vocab_coverage"],
        "unk_tokens": stats["unk_tokens"], "byte_fallback_share": stats["byte_fallback_share"],
        "byte_fallback_share_all": stats["byte_fallback_share_all"],
        "character_coverage": info.get("options", {}).get("character_coverage"),
        "split_key": plan.key, "split_note": plan.note,
        "encoded_tokens": encoded["encoded_tokens"], "encode_tokens_per_s": encoded["tokens_per_s"],
        "seconds": seconds, "cpu_seconds": cpu_seconds,
    }
