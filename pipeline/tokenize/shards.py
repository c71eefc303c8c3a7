"""The token-shard format, written by the tokenize stage and read by ``pipeline.loader``: numpy + pyarrow only.

A shard is an uncompressed Arrow IPC file (``<split>/part-00000.arrow`` ...) holding one record batch, so
each column is one contiguous buffer that can be memory-mapped and viewed as numpy without a copy:

- ``tokens``: ``list<uint16>`` (``list<uint32>`` when the vocabulary has more than 65,536 ids); the list
  offsets are document boundaries and every document ends with EOS;
- ``doc_id`` (string), ``n_bytes`` (int64: UTF-8 bytes of the document's text, for bits per byte);
- ``script`` (dictionary<int8, string>): the document's dominant script (``tokenize.scripts``).

Shards follow the document order of the input. A shard closes before the next document would take it past
``shard_tokens``, so its size depends only on the documents' token counts, never on batching or workers;
a document longer than ``shard_tokens`` gets a shard of its own.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.tokenize.scripts import SCRIPTS

META_FILE = "meta.json"
TOKENIZER_DIR = "tokenizer"
TOKEN_BYTES_FILE = f"{TOKENIZER_DIR}/token_bytes.npy"
_SCRIPT_DICT = pa.array(SCRIPTS, type=pa.string())


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 while every id fits (ids 0 .. 65,535), else uint32."""
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be positive, got {vocab_size}")
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def shard_schema(dtype: np.dtype, split: str, tokenizer_digest: str) -> pa.Schema:
    return pa.schema([
        ("tokens", pa.list_(pa.from_numpy_dtype(dtype))),
        ("doc_id", pa.string()),
        ("n_bytes", pa.int64()),
        ("script", pa.dictionary(pa.int8(), pa.string())),
    ], metadata={"lmforge.split": split, "lmforge.tokenizer": tokenizer_digest})


def shard_name(split: str, index: int) -> str:
    return f"{split}/part-{index:05d}.arrow"


def list_shards(folder: Path, split: str) -> list[Path]:
    from pipeline.store import shard_files
    paths = shard_files(Path(folder), split, ".arrow")  # a published output: the shards its manifest lists
    expected = [Path(folder) / shard_name(split, i) for i in range(len(paths))]
    if paths != expected:
        raise ValueError(f"{folder / split}: shard files are not numbered 0..{len(paths) - 1}: "
                         f"{[p.name for p in paths]}")
    return paths


@dataclass
class DocBatch:
    """Encoded documents in order: flat tokens (shard dtype) and per-document columns."""
    tokens: np.ndarray
    lengths: np.ndarray  # int64 tokens per document (EOS included)
    doc_ids: pa.Array
    n_bytes: np.ndarray  # int64
    scripts: np.ndarray  # int8 index into SCRIPTS

    def __len__(self) -> int:
        return len(self.lengths)

    def slice(self, a: int, b: int) -> "DocBatch":
        start = int(self.lengths[:a].sum())
        stop = start + int(self.lengths[a:b].sum())
        return DocBatch(self.tokens[start:stop], self.lengths[a:b], self.doc_ids[a:b],
                        self.n_bytes[a:b], self.scripts[a:b])

    @staticmethod
    def concat(batches: list["DocBatch"]) -> "DocBatch":
        return DocBatch(np.concatenate([b.tokens for b in batches]),
                        np.concatenate([b.lengths for b in batches]),
                        pa.concat_arrays([b.doc_ids for b in batches]),
                        np.concatenate([b.n_bytes for b in batches]),
                        np.concatenate([b.scripts for b in batches]))


class ShardPacker:
    """Groups documents into shards of at most ``shard_tokens`` tokens (greedy, in order)."""

    def __init__(self, shard_tokens: int):
        self.shard_tokens = shard_tokens
        self.pending: list[DocBatch] = []
        self.tokens = 0

    def add(self, batch: DocBatch) -> list[DocBatch]:
        """Take the batch's documents; return the shards they completed."""
        done, start, n = [], 0, len(batch)
        cum = np.cumsum(batch.lengths)
        while start < n:
            base = int(cum[start - 1]) if start else 0
            fit = int(np.searchsorted(cum[start:] - base, self.shard_tokens - self.tokens, side="right"))
            if fit == 0 and self.tokens > 0:
                done.append(self._close())
                continue
            fit = max(fit, 1)  # a document longer than a shard gets a shard of its own
            self.pending.append(batch.slice(start, start + fit))
            self.tokens += int(cum[start + fit - 1]) - base
            start += fit
            if start < n:  # the next document does not fit
                done.append(self._close())
        return done

    def finish(self) -> DocBatch | None:
        return self._close() if self.pending else None

    def _close(self) -> DocBatch:
        shard = DocBatch.concat(self.pending)
        self.pending, self.tokens = [], 0
        return shard


def shard_table(batch: DocBatch, schema: pa.Schema) -> pa.Table:
    offsets = np.zeros(len(batch) + 1, dtype=np.int32)
    np.cumsum(batch.lengths, out=offsets[1:])
    tokens = pa.ListArray.from_arrays(pa.array(offsets), pa.array(batch.tokens))
    scripts = pa.DictionaryArray.from_arrays(pa.array(batch.scripts, type=pa.int8()), _SCRIPT_DICT)
    return pa.Table.from_arrays([tokens, batch.doc_ids, pa.array(batch.n_bytes, type=pa.int64()), scripts],
                                schema=schema)


def write_shard_file(path: Path, batch: DocBatch, schema: pa.Schema) -> None:
    table = shard_table(batch, schema)
    options = pa.ipc.IpcWriteOptions(compression=None)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, schema, options=options) as writer:
        writer.write_batch(table.to_batches()[0])


@dataclass
class Shard:
    """One memory-mapped shard: numpy views into the file, no copy."""
    path: Path
    tokens: np.ndarray  # flat token ids (uint16 / uint32)
    offsets: np.ndarray  # int32, len = documents + 1; document i is tokens[offsets[i]:offsets[i + 1]]
    n_bytes: np.ndarray  # int64 per document
    batch: pa.RecordBatch  # doc_id, script and the rest

    @property
    def n_docs(self) -> int:
        return len(self.offsets) - 1


def open_shard(path: Path) -> Shard:
    reader = pa.ipc.open_file(pa.memory_map(str(path), "r"))
    if reader.num_record_batches != 1:
        raise ValueError(f"{path}: expected one record batch, found {reader.num_record_batches}")
    batch = reader.get_batch(0)
    tokens = batch.column("tokens")
    offsets = tokens.offsets.to_numpy(zero_copy_only=True)
    values = tokens.values.to_numpy(zero_copy_only=True)[offsets[0]:offsets[-1]]
    n_bytes = batch.column("n_bytes").to_numpy(zero_copy_only=True)
    return Shard(Path(path), values, offsets - offsets[0] if offsets[0] else offsets, n_bytes, batch)


def count_docs(path: Path) -> int:
    reader = pa.ipc.open_file(pa.memory_map(str(path), "r"))
    return sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))


def read_meta(folder: Path) -> dict[str, Any]:
    path = Path(folder) / META_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: {folder} is not a finished tokenize output")
    return json.loads(path.read_text())
