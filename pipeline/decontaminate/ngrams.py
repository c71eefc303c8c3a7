"""N-gram hashes of a batch of texts, in numpy, without building a string per n-gram.

Normalization is dedup's ``simplify`` (lowercase, punctuation and diacritics removed, digits folded to 0,
whitespace as single separators). Two token streams per batch:

- words: every space-separated word of the simplified text, hashed once over its bytes (dedup's
  ``word_tokens``);
- characters: the code points of the simplified text that belong to scripts written without spaces (Han,
  kana, Thai, …), spaces and everything else left out, so a Chinese passage quoted inside English text lines
  up with the same passage on its own.

A window of k tokens hashes to ``fmix64(Σ_j token[s + j] · P[j] + k)`` with fixed odd multipliers ``P`` per
position (a separate set for each stream), accumulated one position at a time for every window at once: the
windows of every length up to the longest one needed cost one multiply-add pass per length.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pipeline.dedup.mix import fmix64, odd_constants
from pipeline.dedup.shingles import char_tokens, word_tokens
from pipeline.dedup.text import codepoints, is_unspaced, simplify, simplify_unicode, unspaced_share

MAX_N = 256
_POS = {"word": odd_constants(MAX_N, salt=0xDC13), "char": odd_constants(MAX_N, salt=0xDC50)}
UNITS = ("word", "char")


@dataclass
class Stream:
    """Token hashes of a batch of texts, in order; ``text[i]`` is the text token ``i`` belongs to."""
    unit: str
    hashes: np.ndarray  # uint64
    text: np.ndarray    # int64, non-decreasing
    n_texts: int

    def counts(self) -> np.ndarray:
        """Tokens per text."""
        return np.bincount(self.text, minlength=self.n_texts)


@dataclass
class Windows:
    """Hashes of token windows: window i covers tokens ``start[i] .. start[i] + length[i]`` of ``text[i]``."""
    hashes: np.ndarray  # uint64
    text: np.ndarray    # int64
    start: np.ndarray   # int64, token position inside its text
    length: np.ndarray  # int64

    @staticmethod
    def concat(parts: list["Windows"]) -> "Windows":
        if not parts:
            z = np.zeros(0, np.int64)
            return Windows(np.zeros(0, np.uint64), z, z, z)
        return Windows(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("hashes", "text", "start", "length")))

    def take(self, idx: np.ndarray) -> "Windows":
        return Windows(self.hashes[idx], self.text[idx], self.start[idx], self.length[idx])


def unspaced_chars(text: str) -> np.ndarray:
    """Code points (uint32) of the simplified text that belong to unspaced scripts."""
    if unspaced_share(text) == 0.0:  # one C-level scan rules out most texts
        return np.zeros(0, np.uint32)
    cps = codepoints(simplify_unicode(text))
    return cps[is_unspaced(cps)]


def word_stream(texts: Sequence[str]) -> Stream:
    h, t = word_tokens([simplify(x) for x in texts])
    return Stream("word", h, t.astype(np.int64), len(texts))


def char_stream(texts: Sequence[str]) -> Stream:
    h, t = char_tokens([unspaced_chars(x) for x in texts])
    return Stream("char", h, t.astype(np.int64), len(texts))


def stream(unit: str, texts: Sequence[str]) -> Stream:
    return word_stream(texts) if unit == "word" else char_stream(texts)


def windows(s: Stream, lengths: Sequence[int]) -> Windows:
    """Every window of each length in ``lengths`` that lies inside one text."""
    wanted = set(lengths)
    m = len(s.hashes)
    if not wanted or m == 0:
        return Windows.concat([])
    assert max(wanted) <= MAX_N and min(wanted) >= 1, wanted
    pos = _POS[s.unit]
    counts = s.counts()
    first = np.cumsum(counts) - counts  # stream position of each text's first token
    g, term = np.zeros(m, np.uint64), np.empty(m, np.uint64)
    parts = []
    for k in range(1, min(max(wanted), m) + 1):
        w = m - k + 1
        g = g[:w]  # in place: window i's sum grows by token i + k - 1 (wrapping modulo 2^64 on purpose)
        np.multiply(s.hashes[k - 1:k - 1 + w], pos[k - 1], out=term[:w])
        g += term[:w]
        if k in wanted:
            ok = np.flatnonzero(s.text[:w] == s.text[k - 1:k - 1 + w])
            text = s.text[ok]
            parts.append(Windows(fmix64(g[ok] + np.uint64(k)), text, ok - first[text], np.full(len(ok), k, np.int64)))
    return Windows.concat(parts)


def window_text(text: str, unit: str, start: int, length: int) -> str:
    """The normalized tokens of one window, for reports (recomputed: only matched windows are shown)."""
    if unit == "word":
        words = [w for w in simplify(text).split(b" ") if w]
        return b" ".join(words[start:start + length]).decode("utf-8", errors="replace")
    return unspaced_chars(text)[start:start + length].tobytes().decode("utf-32-le")
