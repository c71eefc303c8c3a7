"""A document's dominant script, from the UTF-8 lead bytes of its first bytes: vectorised, no Python per char.

Used to break byte-fallback rates down by script (a CJK corpus with a Latin-trained vocabulary shows up
as a high CJK byte share) and to choose the character coverage. Classes, by UTF-8 lead byte:

- latin: ASCII letters, and lead bytes C3-C9 (U+00C0-U+027F: Latin-1 letters, Latin Extended A/B);
- cyrillic: lead bytes D0-D3 (U+0400-U+04FF);
- cjk: lead bytes E3-ED (U+3000-U+DFFF: CJK punctuation, kana, CJK ideographs, Yi, Hangul);
- other: every other lead byte (Greek, Arabic, Indic, emoji, CJK extension B+ in 4-byte form, ...).

Digits, punctuation, spaces and continuation bytes are not counted; a document with no counted byte
in its prefix is "other".
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SCRIPTS = ("latin", "cjk", "cyrillic", "other")
PREFIX_BYTES = 256  # enough to call a document's script, and a fixed cost per document

_LUT = np.zeros(256, dtype=np.int8)  # 0: not counted, k + 1: SCRIPTS[k]
_LUT[0xC0:] = 4
_LUT[ord("A"):ord("Z") + 1] = 1
_LUT[ord("a"):ord("z") + 1] = 1
_LUT[0xC3:0xCA] = 1
_LUT[0xD0:0xD4] = 3
_LUT[0xE3:0xEE] = 2


def byte_classes(data: np.ndarray) -> np.ndarray:
    """Counts of counted bytes per class (len(SCRIPTS)) in a uint8 array of UTF-8."""
    counts = np.bincount(_LUT[data], minlength=len(SCRIPTS) + 1)
    return counts[1:]


def dominant_scripts(texts: pa.Array) -> np.ndarray:
    """Index into SCRIPTS of each text's dominant script (int8), from its first PREFIX_BYTES bytes."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    texts = pc.fill_null(texts, "")
    n = len(texts)
    if n == 0:
        return np.zeros(0, dtype=np.int8)
    offsets_type = np.int64 if pa.types.is_large_string(texts.type) else np.int32
    _, offsets_buf, data_buf = texts.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=offsets_type)[texts.offset:texts.offset + n + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    if data.size == 0:
        return np.full(n, SCRIPTS.index("other"), dtype=np.int8)
    lengths = np.minimum(np.diff(offsets), PREFIX_BYTES)
    cols = np.arange(PREFIX_BYTES)
    valid = cols < lengths[:, None]
    idx = np.minimum(offsets[:-1, None] + cols, data.size - 1)  # (n, PREFIX_BYTES)
    classes = np.where(valid, _LUT[data[idx]], 0)
    counts = np.stack([(classes == k + 1).sum(axis=1) for k in range(len(SCRIPTS))], axis=1)
    dominant = counts.argmax(axis=1).astype(np.int8)
    dominant[counts.sum(axis=1) == 0] = SCRIPTS.index("other")
    return dominant
