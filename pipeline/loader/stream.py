"""``TokenShards``: one split's shards as a single token stream, memory-mapped; numpy and pyarrow only.

The stream is the concatenation of the split's shards in file order (documents in input order, each
ending with EOS). Nothing is copied when the shards open: each shard's token column is a numpy view into
the mapped file, and windows are gathered from those views with one fancy index per shard involved.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, NamedTuple

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

from pipeline.tokenize.shards import TOKEN_BYTES_FILE, Shard, list_shards, open_shard, read_meta

IGNORE_INDEX = -100  # torch.nn.functional.cross_entropy's default ignore_index


class EvalBatch(NamedTuple):
    x: torch.Tensor  # (B, T) int64 inputs; padding rows/columns hold the pad id
    y: torch.Tensor  # (B, T) int64 targets; IGNORE_INDEX where there is no target
    n_targets: int  # targets in this batch (EOS included)
    n_bytes: int  # UTF-8 bytes of text the targets stand for (EOS and other specials: 0)


class TokenShards:
    """A split of a tokenize output (``folder/meta.json``, ``folder/<split>/part-*.arrow``)."""

    def __init__(self, folder: str | Path, split: str = "train"):
        self.folder, self.split = Path(folder), split
        self.meta: dict[str, Any] = read_meta(self.folder)
        paths = list_shards(self.folder, split) if (self.folder / split).exists() else []
        self.shards: list[Shard] = [open_shard(p) for p in paths]
        sizes = np.array([len(s.tokens) for s in self.shards], dtype=np.int64)
        self.shard_starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.n_tokens = int(self.shard_starts[-1])
        self.dtype = np.dtype(self.meta.get("dtype", "uint16"))
        self.n_docs = sum(s.n_docs for s in self.shards)
        self.n_bytes = int(sum(int(s.n_bytes.sum()) for s in self.shards))
        tb = self.folder / TOKEN_BYTES_FILE
        self.token_bytes = np.load(tb) if tb.exists() else None
        self.vocab_size: int = self.meta["vocab_size"]
        self.special_ids: dict[str, int] = self.meta["special_ids"]
        self.pad_id = self.special_ids.get("pad", 0)
        self._window_views: dict[int, list[np.ndarray]] = {}

    def __repr__(self) -> str:
        return (f"TokenShards({str(self.folder)!r}, {self.split!r}: {len(self.shards)} shards, "
                f"{self.n_tokens:,} tokens, {self.n_docs:,} docs)")

    @property
    def tokens(self) -> list[np.ndarray]:
        """Each shard's flat token ids: zero-copy views into the mapped files."""
        return [s.tokens for s in self.shards]

    @property
    def offsets(self) -> list[np.ndarray]:
        """Each shard's document offsets (int32, len = docs + 1), local to the shard."""
        return [s.offsets for s in self.shards]

    def doc_starts(self) -> np.ndarray:
        """Stream positions (int64) where documents start."""
        parts = [s.offsets[:-1].astype(np.int64) + base for s, base in zip(self.shards, self.shard_starts)]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def window(self, start: int, length: int) -> np.ndarray:
        """``stream[start:start + length]`` (a copy when it crosses shards, else a view)."""
        if start < 0 or start + length > self.n_tokens:
            raise IndexError(f"window [{start}, {start + length}) outside the stream of {self.n_tokens} tokens")
        first = int(np.searchsorted(self.shard_starts, start, side="right")) - 1
        local = start - int(self.shard_starts[first])
        shard = self.shards[first].tokens
        if local + length <= len(shard):
            return shard[local:local + length]
        pieces, need, i = [shard[local:]], length - (len(shard) - local), first + 1
        while need > 0:
            take = self.shards[i].tokens[:need]
            pieces.append(take)
            need -= len(take)
            i += 1
        return np.concatenate(pieces)

    def gather(self, starts: np.ndarray, length: int, out: np.ndarray) -> np.ndarray:
        """``out[i] = stream[starts[i]:starts[i] + length]``, cast to out's dtype.

        Rows are read through a cached ``sliding_window_view`` of each shard (row i = tokens[i:i+length]):
        indexing its first axis copies whole rows, ~10x faster than an element-wise fancy index. Sorted
        starts (what the samplers hand out) put each shard's rows in one contiguous block, so each shard
        costs one read and one slice write; other orders take a slower path.
        """
        starts = np.asarray(starts, dtype=np.int64)
        if len(starts) > 1 and np.any(starts[1:] < starts[:-1]):
            order = np.argsort(starts, kind="stable")
            out[order] = self.gather(starts[order], length, np.empty_like(out))
            return out
        cuts = np.searchsorted(starts, self.shard_starts)  # rows [cuts[s], cuts[s + 1]) start in shard s
        for s in np.flatnonzero(cuts[1:] > cuts[:-1]):
            a, b = int(cuts[s]), int(cuts[s + 1])
            local = starts[a:b] - self.shard_starts[s]
            size = len(self.shards[s].tokens)
            inside = int(np.searchsorted(local, size - length, side="right"))  # rows that end in shard s
            if inside:
                out[a:a + inside] = self._windows(length)[s][local[:inside]]
            for r in range(a + inside, b):  # a window across a shard boundary: rare, one at a time
                out[r] = self.window(int(starts[r]), length)
        return out

    def _windows(self, length: int) -> list[np.ndarray]:
        if length not in self._window_views:
            self._window_views[length] = [sliding_window_view(s.tokens, min(length, len(s.tokens)))
                                          for s in self.shards]
        return self._window_views[length]

    def val_batches(self, block_size: int, batch_size: int, max_batches: int | None = None) -> Iterator[EvalBatch]:
        """Non-overlapping windows in stream order: every token but the first is a target exactly once.

        Window k holds stream[k*T : k*T + T + 1]; the last one may be short and the last batch may have
        fewer windows: both are padded (x with the pad id, y with IGNORE_INDEX), so shapes stay (B, T).
        ``max_batches`` stops early: the same leading windows every time.
        """
        T, B = block_size, batch_size
        n_windows = -(-(self.n_tokens - 1) // T) if self.n_tokens > 1 else 0
        for b, first in enumerate(range(0, n_windows, B)):
            if max_batches is not None and b >= max_batches:
                return
            starts = np.arange(first, min(first + B, n_windows), dtype=np.int64) * T
            lengths = np.minimum(T + 1, self.n_tokens - starts)
            buf = np.full((B, T + 1), self.pad_id, dtype=np.int64)
            full = lengths == T + 1
            self.gather(starts[full], T + 1, buf[:full.sum()])  # short windows only at the end
            for r in np.flatnonzero(~full):
                buf[r, :lengths[r]] = self.window(int(starts[r]), int(lengths[r]))
            x, y = buf[:, :-1].copy(), buf[:, 1:].copy()
            valid = np.arange(T)[None, :] < np.pad(lengths - 1, (0, B - len(starts)))[:, None]
            y[~valid] = IGNORE_INDEX
            n_bytes = int(self.token_bytes[y[valid]].sum()) if self.token_bytes is not None else 0
            yield EvalBatch(torch.from_numpy(x), torch.from_numpy(y), int(valid.sum()), n_bytes)
