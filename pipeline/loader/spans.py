"""Span corruption, T5's pretraining objective (Raffel et al. 2020, section 3.1.4), for an encoder-decoder.

A window of ``L`` tokens loses ``round(L x noise_density)`` of them in ``round(noise / mean_span)`` spans, placed
at random; the encoder reads the window with each span replaced by one sentinel (``<extra_id_0>``,
``<extra_id_1>``... in order), then EOS, and the decoder writes the spans back, each behind its sentinel, then EOS:

    window   The cat sat on the mat .           (noise: "cat", "the mat")
    source   The <extra_id_0> sat on <extra_id_1> . </s>
    target   <extra_id_0> cat <extra_id_1> the mat </s>

(The source ends with EOS as T5's does, and as the encoder's input does in fine-tuning and fill-mask.)

Span and gap lengths are T5's: the noise tokens and the kept tokens are each cut into as many parts as there
are spans, at cut points drawn uniformly, and the parts interleave, a kept part first. The counts depend on
``L`` only, so training windows of one length give source and target of fixed lengths (no padding). Training
windows are ``raw_length(block_size)`` tokens long, the most whose source and target both fit in the block.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from pipeline.loader.batches import WindowSampler, philox
from pipeline.loader.stream import IGNORE_INDEX, TokenShards

MEAN_SPAN = 3.0  # T5's mean noise span length


def span_counts(length: int, noise_density: float, mean_span: float) -> tuple[int, int]:
    """(noise tokens, spans) of a ``length``-token window; ``length`` >= 2."""
    noise = min(max(int(round(length * noise_density)), 1), length - 1)
    spans = min(max(int(round(noise / mean_span)), 1), noise, length - noise)
    return noise, spans


def lengths(length: int, noise_density: float, mean_span: float) -> tuple[int, int]:
    """(source, target) lengths of a corrupted ``length``-token window: kept tokens + a sentinel per span + EOS;
    the spans' tokens + a sentinel per span + EOS."""
    noise, spans = span_counts(length, noise_density, mean_span)
    return length - noise + spans + 1, noise + spans + 1


def raw_length(block_size: int, noise_density: float, mean_span: float) -> int:
    """The longest window whose source and target both fit in ``block_size`` positions."""
    n = 2
    while max(lengths(n + 1, noise_density, mean_span)) <= block_size:
        n += 1
    return n


def max_noise(mean_span: float) -> float:
    """The largest noise density whose spans keep their mean length: each span needs a kept token before it, so
    noise / mean_span spans need noise / mean_span <= 1 - noise (beyond it ``span_counts`` merges spans)."""
    return mean_span / (mean_span + 1.0)


def sentinels_needed(block_size: int, noise_density: float, mean_span: float) -> tuple[int, int]:
    """(window length, sentinels its spans need) for a model of ``block_size`` positions."""
    length = raw_length(block_size, noise_density, mean_span)
    return length, span_counts(length, noise_density, mean_span)[1]


def _cuts(total: int, parts: int, rng: np.random.Generator) -> np.ndarray:
    """``parts`` positive lengths summing to ``total``, cut points uniform (T5's random segmentation)."""
    cuts = np.sort(rng.choice(total - 1, parts - 1, replace=False) + 1) if parts > 1 else np.zeros(0, np.int64)
    return np.diff(np.concatenate(([0], cuts, [total])))


def corrupt(tokens: np.ndarray, rng: np.random.Generator, noise_density: float, mean_span: float,
            sentinel_ids: Sequence[int], eos_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(source, target) int64 arrays of one window (module docstring); ``len(tokens)`` >= 2."""
    noise, spans = span_counts(len(tokens), noise_density, mean_span)
    if spans > len(sentinel_ids):
        raise ValueError(f"a {len(tokens)}-token window needs {spans} sentinels; the tokenizer has "
                         f"{len(sentinel_ids)} (tokenize.sentinels, or the tokenizer tokenize.tokenizer_path names)")
    noise_len = _cuts(noise, spans, rng)
    kept_len = _cuts(len(tokens) - noise, spans, rng)
    src, tgt, pos = [], [], 0
    for i in range(spans):
        src.append(tokens[pos:pos + kept_len[i]])
        pos += kept_len[i]
        src.append([sentinel_ids[i]])
        tgt += [[sentinel_ids[i]], tokens[pos:pos + noise_len[i]]]
        pos += noise_len[i]
    src.append([eos_id])
    tgt.append([eos_id])
    return (np.concatenate(src).astype(np.int64), np.concatenate(tgt).astype(np.int64))


def collate(pairs: list[tuple[np.ndarray, np.ndarray]], pad_id: int, start_id: int) -> dict[str, torch.Tensor]:
    """Pad a batch of (source, target): ``src``, ``src_mask``, ``tgt_in`` (the target behind ``start_id``,
    shifted right), ``tgt_mask`` and ``targets`` (IGNORE_INDEX on padding)."""
    S, T = max(len(s) for s, _ in pairs), max(len(t) for _, t in pairs)
    src = np.full((len(pairs), S), pad_id, np.int64)
    tgt_in = np.full((len(pairs), T), pad_id, np.int64)
    targets = np.full((len(pairs), T), IGNORE_INDEX, np.int64)
    src_mask, tgt_mask = np.zeros((len(pairs), S), np.int64), np.zeros((len(pairs), T), np.int64)
    for r, (s, t) in enumerate(pairs):
        src[r, :len(s)], src_mask[r, :len(s)] = s, 1
        tgt_in[r, 0], tgt_in[r, 1:len(t)] = start_id, t[:-1]
        targets[r, :len(t)], tgt_mask[r, :len(t)] = t, 1
    return {k: torch.from_numpy(v) for k, v in (("src", src), ("src_mask", src_mask), ("tgt_in", tgt_in),
                                                 ("tgt_mask", tgt_mask), ("targets", targets))}


def decoder_start(special_ids: dict[str, int | None]) -> int:
    """The decoder's first input: BOS, else PAD (T5's), else 0."""
    for name in ("bos", "pad"):
        if special_ids.get(name) is not None:
            return int(special_ids[name])
    return 0


class SpanBatches:
    """``get(step) -> ((src, tgt_in), targets)`` for span corruption: (B, S) and (B, T) int64, fixed lengths, a
    pure function of (seed, step) like the other batches (Philox keyed by the seed at the step's counter)."""

    def __init__(self, shards: TokenShards, block_size: int, batch_size: int, seed: int,
                 noise_density: float = 0.15, mean_span: float = MEAN_SPAN, doc_aligned: bool = False):
        if not 0.0 < noise_density < 1.0:
            raise ValueError(f"noise_density must be in (0, 1), got {noise_density}")
        if mean_span < 1.0:
            raise ValueError(f"mean_span must be >= 1, got {mean_span}")
        self.shards, self.batch_size, self.seed = shards, batch_size, seed
        self.noise_density, self.mean_span = noise_density, mean_span
        self.length, need = sentinels_needed(block_size, noise_density, mean_span)
        self.sentinels = list(shards.meta.get("sentinel_ids") or [])
        if need > len(self.sentinels):
            raise ValueError(f"span corruption of {self.length}-token windows (block_size {block_size}) needs {need} "
                             f"sentinel ids; the tokenizer has {len(self.sentinels)} (tokenize.sentinels when it is "
                             "trained; else those of the tokenizer tokenize.tokenizer_path names)")
        self.eos_id, self.start_id = shards.special_ids["eos"], decoder_start(shards.special_ids)
        self.sampler = WindowSampler(shards, self.length, doc_aligned)

    def get(self, step: int) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        rng = np.random.Generator(philox(self.seed, step))
        windows = np.empty((self.batch_size, self.length), dtype=np.int64)
        self.shards.gather(self.sampler.sample(rng.bit_generator.random_raw(self.batch_size)), self.length, windows)
        pairs = [corrupt(w, rng, self.noise_density, self.mean_span, self.sentinels, self.eos_id) for w in windows]
        b = collate(pairs, self.shards.pad_id, self.start_id)
        return (b["src"], b["tgt_in"]), b["targets"]


__all__ = ["MEAN_SPAN", "span_counts", "lengths", "raw_length", "max_noise", "sentinels_needed", "corrupt", "collate",
           "decoder_start", "SpanBatches"]
