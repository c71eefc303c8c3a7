"""Training batches drawn from a ``TokenShards`` stream, a pure function of (seed, step).

Every batch draws from its own counter-based stream, Philox-4x64 keyed by the seed at counter
``(0, step, 0, 0)``: a resumed run asks for step 12,345 and gets exactly the batch the interrupted run
would have seen, in any process, with no sampler state to checkpoint. Window starts are ``raw % n``
(the modulo bias is below 2**-24 for streams under 2**40 tokens).

Windows start anywhere in the concatenated stream, uniformly (``doc_aligned=True``: at document starts,
uniformly over documents), and may cross document and shard boundaries; documents are separated by EOS,
as in GPT-style packing. Batches are gathered with one fancy index per shard involved into a fresh
int64 buffer, so the tensors a step returns are never overwritten by the next one.
"""
from __future__ import annotations

import threading
from typing import Sequence

import numpy as np
import torch

from pipeline.loader.stream import IGNORE_INDEX, TokenShards


def philox(seed: int, step: int) -> np.random.Philox:
    return np.random.Philox(key=seed, counter=[0, step, 0, 0])


class StepRandom:
    """``raw(step, n)`` == ``philox(seed, step).random_raw(n)``, without building a generator per call.

    Creating a numpy generator costs ~4x gathering a whole 64 x 256 batch here, so one bit generator is
    kept and its counter set for each step (under a lock: callers may share an instance across threads).
    """

    def __init__(self, seed: int):
        self._bits = philox(seed, 0)
        self._state = self._bits.state  # a fresh generator's state; only the counter changes
        self._lock = threading.Lock()

    def raw(self, step: int, n: int) -> np.ndarray:
        with self._lock:
            self._state["state"]["counter"][:] = (0, step, 0, 0)
            self._bits.state = self._state
            return self._bits.random_raw(n)


class NotEnoughTokens(ValueError):
    """A split too short for what is asked of it: the user's data, not a bug (the CLI prints the message alone)."""


class WindowSampler:
    """Start positions of ``length``-token windows that fit in the stream."""

    def __init__(self, shards: TokenShards, length: int, doc_aligned: bool):
        if length < 1:
            raise ValueError(f"window length must be >= 1, got {length}")
        if shards.n_tokens < length:
            raise NotEnoughTokens(f"{shards.split} split has {shards.n_tokens:,} tokens, fewer than one window of "
                             f"{length} (block_size + 1 for causal LM); use a smaller block_size or more data")
        self.length = length
        self.doc_starts = None
        self.n_starts = shards.n_tokens - length + 1
        if doc_aligned:
            starts = shards.doc_starts()
            self.doc_starts = starts[starts + length <= shards.n_tokens]
            if len(self.doc_starts) == 0:
                raise NotEnoughTokens(f"no document of the {shards.split} split starts {length} tokens before the end")

    def sample(self, raw: np.ndarray) -> np.ndarray:
        """Window starts from raw uint64 draws, sorted (rows in stream order: a batch is a set of windows)."""
        if self.doc_starts is not None:
            return np.sort(self.doc_starts[(raw % np.uint64(len(self.doc_starts))).astype(np.int64)])
        return np.sort((raw % np.uint64(self.n_starts)).astype(np.int64))


class CausalBatches:
    """``get(step) -> (x, y)``: int64 (B, T) inputs and next-token targets, y[:, t] = stream[s + t + 1]."""

    def __init__(self, shards: TokenShards, block_size: int, batch_size: int, seed: int,
                 doc_aligned: bool = False):
        self.shards, self.block_size, self.batch_size, self.seed = shards, block_size, batch_size, seed
        self.sampler = WindowSampler(shards, block_size + 1, doc_aligned)
        self.random = StepRandom(seed)

    def starts(self, step: int) -> np.ndarray:
        return self.sampler.sample(self.random.raw(step, self.batch_size))

    def get(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        windows = np.empty((self.batch_size, self.block_size + 1), dtype=self.shards.dtype)
        self.shards.gather(self.starts(step), self.block_size + 1, windows)
        # Two contiguous int64 tensors (callers do y.view(-1), which a strided view would refuse); the
        # gather moves 2-byte ids, the casts write each output once.
        x = np.ascontiguousarray(windows[:, :-1], dtype=np.int64)
        y = np.ascontiguousarray(windows[:, 1:], dtype=np.int64)
        return torch.from_numpy(x), torch.from_numpy(y)


class MaskedBatches:
    """``get(step) -> (x, labels)`` for masked-LM (BERT): (B, T) int64, labels IGNORE_INDEX where unmasked.

    Each non-special position is chosen with probability ``mask_rate``; a chosen position becomes the
    mask id (80%), a random non-special id (10%) or stays (10%), and its label is the original id.
    Special ids (pad, unk, bos, eos, mask, sep, cls, sentinels; by default the shards' ``all_special_ids``)
    are never chosen and never drawn as random replacements.
    """

    def __init__(self, shards: TokenShards, block_size: int, batch_size: int, seed: int,
                 mask_rate: float = 0.15, mask_id: int | None = None, vocab_size: int | None = None,
                 special_ids: Sequence[int] | None = None, doc_aligned: bool = False):
        if not 0.0 < mask_rate < 1.0:
            raise ValueError(f"mask_rate must be in (0, 1), got {mask_rate}")
        self.shards, self.block_size, self.batch_size, self.seed = shards, block_size, batch_size, seed
        self.mask_rate = mask_rate
        self.mask_id = shards.special_ids["mask"] if mask_id is None else mask_id
        self.vocab_size = shards.vocab_size if vocab_size is None else vocab_size
        specials = shards.meta["all_special_ids"] if special_ids is None else special_ids
        self.is_special = np.zeros(self.vocab_size, dtype=bool)
        self.is_special[np.asarray(list(specials), dtype=np.int64)] = True
        self.is_special[self.mask_id] = True
        self.replacements = np.flatnonzero(~self.is_special)
        self.sampler = WindowSampler(shards, block_size, doc_aligned)

    def starts(self, rng: np.random.Generator) -> np.ndarray:
        return self.sampler.sample(rng.bit_generator.random_raw(self.batch_size))

    def get(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        B, T = self.batch_size, self.block_size
        rng = np.random.Generator(philox(self.seed, step))
        x = np.empty((B, T), dtype=np.int64)
        self.shards.gather(self.starts(rng), T, x)
        u = rng.random((B, T), dtype=np.float32)
        chosen = (u < self.mask_rate) & ~self.is_special[x]
        labels = np.where(chosen, x, IGNORE_INDEX)
        action = u / np.float32(self.mask_rate)  # uniform on [0, 1) again among the chosen positions
        x[chosen & (action < 0.8)] = self.mask_id
        randomize = chosen & (action >= 0.8) & (action < 0.9)
        x[randomize] = self.replacements[rng.integers(0, len(self.replacements), size=int(randomize.sum()))]
        return torch.from_numpy(x), torch.from_numpy(labels)
