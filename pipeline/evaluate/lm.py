"""Scoring the pretrained model on held-out text: loss, perplexity and bits per byte (causal LM), masked-LM
loss and accuracy (encoder), or the loss and accuracy of an encoder-decoder's span targets.

Windows are the loader's validation windows (``TokenShards.val_batches``): non-overlapping, in stream order,
so every token but the first is predicted exactly once with the context of its own window (a causal LM). Every
objective is scored by the shared ``pipeline.lm_eval.evaluate_lm``, so the figures equal the pretrain stage's
validation figures on the same windows (with the same mask rate and, for an encoder-decoder, mean span).
Bits per byte is lm-eval's: Σ NLL (nats) / ln 2 / UTF-8 bytes of the predicted tokens
(``tokenizer/token_bytes.npy``; EOS and other specials stand for 0 bytes). A masked LM gets a fixed share of each
window's ordinary tokens replaced by the mask id, an encoder-decoder that share cut out in spans (``lm_eval``).

An extra text file becomes a one-document validation split (EOS, then the text's tokens) in a temporary
folder, so it is windowed and byte-counted by the same code: for a causal LM every token of the text is
predicted and the bytes are the text's UTF-8 bytes.
"""
from __future__ import annotations

import hashlib
import json
import math
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow as pa
from torch import nn

from pipeline.configtypes import ConfigError
from pipeline.lm_eval import evaluate_lm
from pipeline.loader import TokenShards
from pipeline.pretrain.runtime import Runtime
from pipeline.tokenize.shards import (META_FILE, TOKEN_BYTES_FILE, DocBatch, shard_name, shard_schema, token_dtype,
                                      write_shard_file)
from pipeline.tokenize.tokenizer import Tokenizer

def n_batches(max_tokens: int | None, block_size: int, batch_size: int) -> int | None:
    """Batches of validation windows holding at least ``max_tokens`` targets (None: all of them)."""
    return None if max_tokens is None else max(1, math.ceil(max_tokens / (block_size * batch_size)))


def score_lm(model: nn.Module, shards: TokenShards, rt: Runtime, block_size: int, batch_size: int,
             max_batches: int | None, mask_rate: float | None = None, mean_span: float = 3.0) -> dict[str, float]:
    """The shared ``evaluate_lm`` (the pretrain stage's validation figures), on every window or the first
    ``max_batches`` batches of them; ``mask_rate``: the model is a masked LM or an encoder-decoder (its spans
    ``mean_span`` long on average)."""
    shape = SimpleNamespace(model=SimpleNamespace(block_size=block_size), batch_size=batch_size,
                            mask_rate=mask_rate, mean_span=mean_span)
    out = evaluate_lm(model, shards, shape, rt, max_batches=max_batches)
    nan = float("nan")
    if mask_rate is not None:
        return {"loss": out.get("loss", nan), "accuracy": out.get("accuracy", nan), "tokens": int(out.get("tokens", 0)),
                **({"encoder_gain": out["encoder_gain"]} if "encoder_gain" in out else {})}
    return {"loss": out.get("loss", nan), "ppl": out.get("ppl", nan), "bpb": out.get("bpb", nan),
            "tokens": int(out.get("tokens", 0)), "bytes": int(out.get("bytes", 0))}


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
            "sentinel_ids": tok.sentinel_ids, "all_special_ids": tok.all_special_ids}
    (folder / META_FILE).write_text(json.dumps(meta))
    return TokenShards(folder, "val")


def score_text(model: nn.Module, path: Path, tok: Tokenizer, rt: Runtime, block_size: int, batch_size: int,
               max_batches: int | None, mask_rate: float | None = None, mean_span: float = 3.0) -> dict[str, Any]:
    data = path.read_bytes()
    text = data.decode("utf-8")
    with tempfile.TemporaryDirectory(prefix="lmforge-eval-") as tmp:
        shards = text_split(text, tok, Path(tmp))
        out = score_lm(model, shards, rt, block_size, batch_size, max_batches, mask_rate, mean_span)
        del shards  # release the memory map before the folder goes
    if not out["tokens"]:  # a masked LM scores a drawn share of the tokens: a short text may draw none
        raise ConfigError(f"evaluate.extra_texts: {str(path)!r} is too short to score: the masked LM masks a share of "
                          f"{mask_rate} of its {len(tok.encode(text))} token(s) and drew none; give a longer text")
    # The key holds the file's size and mtime; the digest in the report names the exact contents scored.
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    return {**out, "chars": len(text), "text_bytes": len(data), "digest": digest}
