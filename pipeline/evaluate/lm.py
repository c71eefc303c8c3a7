"""Scoring the pretrained model on held-out text: loss, perplexity and bits per byte (causal LM), or
masked-LM loss and accuracy (encoder).

Windows are the loader's validation windows (``TokenShards.val_batches``): non-overlapping, in stream order,
so every token but the first is predicted exactly once with the context of its own window. A causal LM is
scored by the shared ``pipeline.lm_eval.evaluate_lm``, so the figures equal the pretrain stage's validation
figures on the same windows. Bits per byte is lm-eval's: Σ NLL (nats) / ln 2 / UTF-8 bytes of the predicted
tokens (``tokenizer/token_bytes.npy``; EOS and other specials stand for 0 bytes).

A masked LM is scored here rather than by ``evaluate_lm`` (which samples 20 random batches with BERT's
80/10/10 corruption, a training-time figure): every validation window once, a fixed share of its ordinary
tokens replaced by the mask id, so the accuracy measures prediction from context alone.

An extra text file becomes a one-document validation split (EOS, then the text's tokens) in a temporary
folder, so it is windowed and byte-counted by the same code: every token of the text is predicted and the
bytes are the text's UTF-8 bytes.
"""
from __future__ import annotations

import hashlib
import json
import math
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterable

import numpy as np
import pyarrow as pa
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.lm_eval import evaluate_lm
from pipeline.loader import IGNORE_INDEX, EvalBatch, TokenShards
from pipeline.pretrain.runtime import Runtime
from pipeline.tokenize.shards import (META_FILE, TOKEN_BYTES_FILE, DocBatch, shard_name, shard_schema, token_dtype,
                                      write_shard_file)
from pipeline.tokenize.tokenizer import Tokenizer

MASK_SEED = 0  # which positions are masked in the masked-LM evaluation: fixed, so runs compare


def n_batches(max_tokens: int | None, block_size: int, batch_size: int) -> int | None:
    """Batches of validation windows holding at least ``max_tokens`` targets (None: all of them)."""
    return None if max_tokens is None else max(1, math.ceil(max_tokens / (block_size * batch_size)))


def score_causal(model: nn.Module, shards: TokenShards, rt: Runtime, block_size: int, batch_size: int,
                 max_batches: int | None) -> dict[str, float]:
    """The shared ``evaluate_lm`` (the pretrain stage's validation figures), on every window or the first
    ``max_batches`` batches of them."""
    shape = SimpleNamespace(model=SimpleNamespace(block_size=block_size), batch_size=batch_size)
    out = evaluate_lm(model, shards, shape, rt, max_batches=max_batches)
    nan = float("nan")
    return {"loss": out.get("loss", nan), "ppl": out.get("ppl", nan), "bpb": out.get("bpb", nan),
            "tokens": int(out.get("tokens", 0)), "bytes": int(out.get("bytes", 0))}


@torch.no_grad()
def score_masked(model: nn.Module, batches: Iterable[EvalBatch], rt: Runtime, mask_id: int, special: np.ndarray,
                 pad_id: int, mask_rate: float) -> dict[str, float]:
    """Loss and accuracy on a fixed ``mask_rate`` of each window's non-special tokens, all replaced by
    ``mask_id`` (no 80/10/10 at evaluation: the score measures prediction from context alone)."""
    was_training = model.training
    model.eval()
    nll, correct, masked = 0.0, 0, 0
    for i, b in enumerate(batches):
        x = b.x.numpy()
        rng = np.random.default_rng([MASK_SEED, i])
        real = x != pad_id
        chosen = (rng.random(x.shape) < mask_rate) & real & ~special[x]
        if not chosen.any():
            continue
        inputs = np.where(chosen, mask_id, x)
        labels = torch.from_numpy(np.where(chosen, x, IGNORE_INDEX))
        with rt.autocast():
            logits, _ = model(torch.from_numpy(inputs).to(rt.device), labels.to(rt.device),
                              torch.from_numpy(real).to(rt.device))
        target = labels[labels != IGNORE_INDEX].to(rt.device)  # row-major, as MaskedLM returns its logits
        nll += float(F.cross_entropy(logits.float(), target, reduction="sum"))
        correct += int((logits.argmax(-1) == target).sum())
        masked += len(target)
    model.train(was_training)
    loss = nll / masked if masked else float("nan")
    return {"loss": loss, "accuracy": correct / masked if masked else float("nan"), "tokens": masked}


def text_split(text: str, tok: Tokenizer, folder: Path) -> TokenShards:
    """Write ``text`` as a one-document "val" split (EOS first, so its first token is predicted too)."""
    if tok.eos_id is None:
        raise ValueError("the model's tokenizer has no EOS id to start an extra text with")
    ids = np.asarray([tok.eos_id, *tok.encode(text)], dtype=token_dtype(tok.vocab_size))
    batch = DocBatch(ids, np.array([len(ids)], np.int64), pa.array(["text"]),
                     np.array([len(text.encode("utf-8"))], np.int64), np.zeros(1, np.int8))
    (folder / "val").mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer").mkdir(exist_ok=True)
    write_shard_file(folder / shard_name("val", 0), batch, shard_schema(ids.dtype, "val", tok.digest))
    with open(folder / TOKEN_BYTES_FILE, "wb") as f:
        np.save(f, tok.token_bytes())
    meta = {"vocab_size": tok.vocab_size, "dtype": ids.dtype.name, "special_ids": tok.special_ids,
            "all_special_ids": tok.all_special_ids}
    (folder / META_FILE).write_text(json.dumps(meta))
    return TokenShards(folder, "val")


def score(model: nn.Module, shards: TokenShards, rt: Runtime, block_size: int, batch_size: int,
          max_batches: int | None, masked: dict[str, Any] | None) -> dict[str, float]:
    """Causal or (with ``masked`` = score_masked's keyword arguments) masked-LM figures of one split."""
    if masked is None:
        return score_causal(model, shards, rt, block_size, batch_size, max_batches)
    return score_masked(model, shards.val_batches(block_size, batch_size, max_batches), rt, **masked)


def score_text(model: nn.Module, path: Path, tok: Tokenizer, rt: Runtime, block_size: int, batch_size: int,
               max_batches: int | None, masked: dict[str, Any] | None) -> dict[str, Any]:
    data = path.read_bytes()
    text = data.decode("utf-8")
    with tempfile.TemporaryDirectory(prefix="lmforge-eval-") as tmp:
        shards = text_split(text, tok, Path(tmp))
        out = score(model, shards, rt, block_size, batch_size, max_batches, masked)
        del shards  # release the memory map before the folder goes
    # The key holds the file's size and mtime; the digest in the report names the exact contents scored.
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    return {**out, "chars": len(text), "text_bytes": len(data), "digest": digest}
