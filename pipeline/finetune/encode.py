"""Examples to token ids with the pretrained model's tokenizer, and padded batches.

Layout (pretraining saw documents that end with ``</s>``):
- decoder: ``text``; a pair is ``text <sep> text_pair``; pooled by ``finetune.pooling`` (``auto``: the
  mean of the real tokens' states; ``last``: the last real token, the only one that has seen the whole
  text; never a ``</s>``: see ``special_layout``);
- encoder: ``<cls> text </s>`` (pairs ``<cls> text <sep> text_pair </s>``), pooled at ``<cls>`` (``auto``).
- encoder-decoder: its encoder reads ``text </s>`` (pairs ``text <sep> text_pair </s>``), mean-pooled (``auto``).
Tagging encodes each word on its own (with the space that precedes it in running text, so pieces match
the running text's), labels the FIRST sub-token of each word and puts -100 on the others; predictions
map back to words through ``first`` (-1 for a word cut off by truncation, predicted ``O``: ``outside``).
Truncation keeps the layout's special tokens and cuts the text (for a pair, the longer text first).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import torch

from pipeline.tokenize.tokenizer import Tokenizer

IGNORE = -100


@dataclass
class Encoded:
    ids: list[np.ndarray]  # per example, int64
    labels: list[np.ndarray]  # per example: shape () class id for classification, (len ids,) for tagging
    first: list[np.ndarray] | None  # tagging: position of each word's first sub-token, -1 if truncated
    truncated: int  # examples that lost tokens to max_len
    outside: int = 0  # tagging: the id of ``O``, predicted for a word cut off by truncation
    cut: set[int] = field(default_factory=set)  # the rows that lost tokens (``truncated`` of them)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_tokens(self) -> int:
        return int(sum(len(x) for x in self.ids))


def special_layout(tok: Tokenizer, arch: str) -> tuple[list[int], list[int], list[int]]:
    """(prefix, separator, suffix) ids for this model family. A decoder gets no ``</s>``: pretraining
    packs documents after ``</s>``, so the model learns to carry nothing of a text past it, and a
    pooled ``</s>`` holds no trace of the text (measured on SST-2: chance-level features)."""
    eos = [tok.eos_id] if tok.eos_id is not None else []
    sep = [tok.sep_id] if tok.sep_id is not None else eos
    if arch == "encoder":
        return ([tok.cls_id] if tok.cls_id is not None else []), sep, eos
    if arch == "encoder_decoder":  # T5's encoder input: the text, then </s>
        return [], sep, eos
    return [], sep, []


def _fit_pair(a: np.ndarray, b: np.ndarray, room: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut the longer of two id arrays first until both fit in ``room`` (longest-first truncation)."""
    la, lb = len(a), len(b)
    while la + lb > room:
        if la >= lb:
            la -= 1
        else:
            lb -= 1
    return a[:la], b[:lb]


def encode_texts(examples: list[dict[str, Any]], labels: list[str], tok: Tokenizer, arch: str,
                 max_len: int, threads: int = 1) -> Encoded:
    prefix, sep, suffix = special_layout(tok, arch)
    index = {lab: i for i, lab in enumerate(labels)}
    texts = tok.encode_batch([ex["text"] for ex in examples], num_threads=threads)
    pairs = (tok.encode_batch([ex["text_pair"] for ex in examples], num_threads=threads)
             if examples and "text_pair" in examples[0] else None)
    ids, labs, cuts = [], [], set()
    for i, ex in enumerate(examples):
        a = np.asarray(texts[i], dtype=np.int64)
        if pairs is None:
            room = max_len - len(prefix) - len(suffix)
            body = a[:room]
            cut = len(body) < len(a)
        else:
            b = np.asarray(pairs[i], dtype=np.int64)
            room = max_len - len(prefix) - len(sep) - len(suffix)
            a2, b2 = _fit_pair(a, b, room)
            cut = len(a2) + len(b2) < len(a) + len(b)
            body = np.concatenate([a2, np.asarray(sep, dtype=np.int64), b2])
        if cut:
            cuts.add(i)
        ids.append(np.concatenate([np.asarray(prefix, dtype=np.int64), body, np.asarray(suffix, dtype=np.int64)]))
        labs.append(np.asarray(index[ex["label"]], dtype=np.int64))
    return Encoded(ids, labs, None, len(cuts), cut=cuts)


def encode_tagged(examples: list[dict[str, Any]], labels: list[str], tok: Tokenizer, arch: str,
                  max_len: int, threads: int = 1) -> Encoded:
    prefix, _, suffix = special_layout(tok, arch)
    index = {lab: i for i, lab in enumerate(labels)}
    words = [w if j == 0 else " " + w for ex in examples for j, w in enumerate(ex["tokens"])]
    flat, lengths = tok.encode_flat(words, num_threads=threads)
    ends = np.cumsum(lengths)
    room = max_len - len(prefix) - len(suffix)
    ids, labs, firsts, cuts, w = [], [], [], set(), 0
    for i, ex in enumerate(examples):
        n = len(ex["tokens"])
        lens = lengths[w:w + n]
        start = int(ends[w - 1]) if w else 0
        body = flat[start:int(ends[w + n - 1])].astype(np.int64)
        w += n
        first = len(prefix) + np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
        kept = first < len(prefix) + room
        if len(body) > room:
            cuts.add(i)
        body = body[:room]
        seq = np.concatenate([np.asarray(prefix, dtype=np.int64), body, np.asarray(suffix, dtype=np.int64)])
        lab = np.full(len(seq), IGNORE, dtype=np.int64)
        tag_ids = np.asarray([index[t] for t in ex["tags"]], dtype=np.int64)
        lab[first[kept]] = tag_ids[kept]
        ids.append(seq)
        labs.append(lab)
        firsts.append(np.where(kept, first, -1))
    return Encoded(ids, labs, firsts, len(cuts), index["O"], cuts)


def encode(examples: list[dict[str, Any]], kind: str, labels: list[str], tok: Tokenizer, arch: str,
           max_len: int, threads: int = 1) -> Encoded:
    fn = encode_tagged if kind == "tagging" else encode_texts
    return fn(examples, labels, tok, arch, max_len, threads)


def collate(enc: Encoded, rows: np.ndarray | list[int], pad_id: int, tagging: bool
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(idx, attention_mask, labels) for ``rows``, right-padded to the longest row."""
    T = max(len(enc.ids[i]) for i in rows)
    idx = np.full((len(rows), T), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), T), dtype=np.int64)
    lab = np.full((len(rows), T), IGNORE, dtype=np.int64) if tagging else np.zeros(len(rows), dtype=np.int64)
    for r, i in enumerate(rows):
        n = len(enc.ids[i])
        idx[r, :n] = enc.ids[i]
        mask[r, :n] = 1
        if tagging:
            lab[r, :n] = enc.labels[i]
        else:
            lab[r] = enc.labels[i]
    return torch.from_numpy(idx), torch.from_numpy(mask), torch.from_numpy(lab)


def train_batches(lengths: np.ndarray | list[int], batch_size: int, seed: int, epoch: int,
                  bucket: int = 32) -> Iterator[np.ndarray]:
    """A seeded shuffle per epoch, cut into batches of similar lengths (less padding): the shuffled
    rows are taken ``bucket`` batches at a time, sorted by length inside, cut into batches, and all
    batches are shuffled again. Every row appears once an epoch; only the very last batch may be short."""
    rng = np.random.default_rng([seed, epoch])
    lengths = np.asarray(lengths)
    order = rng.permutation(len(lengths))
    batches = []
    for i in range(0, len(order), batch_size * bucket):
        chunk = order[i:i + batch_size * bucket]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size)]
    for k in rng.permutation(len(batches)):
        yield batches[k]


def eval_batches(enc: Encoded, batch_size: int) -> Iterator[np.ndarray]:
    """Rows sorted by length (less padding), cut into batches; callers scatter results back by row."""
    order = np.argsort([len(x) for x in enc.ids], kind="stable")
    for i in range(0, len(order), batch_size):
        yield order[i:i + batch_size]


def class_weights(enc: Encoded, n_labels: int) -> torch.Tensor:
    """Inverse-frequency weights ``N / (K * count)`` over the labelled positions (1 for unseen labels)."""
    labs = np.concatenate([np.atleast_1d(x) for x in enc.labels])
    labs = labs[labs != IGNORE]
    counts = np.bincount(labs, minlength=n_labels).astype(np.float64)
    w = np.where(counts > 0, len(labs) / (n_labels * np.maximum(counts, 1)), 1.0)
    return torch.tensor(w, dtype=torch.float32)


__all__ = ["Encoded", "IGNORE", "encode", "encode_texts", "encode_tagged", "collate", "train_batches",
           "eval_batches", "class_weights", "special_layout"]
