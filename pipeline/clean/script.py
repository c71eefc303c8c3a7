"""Which writing system a document is in, from one numpy pass over its code points.

Word-based rules assume words separated by spaces. That is wrong for Chinese and Japanese, so the
stage needs to know how much of a document is written in a script without spaces ("cjk"). Each code
point is mapped to a script class through a lookup table over all of Unicode (1.1 MB of uint8), and
the classes are counted with ``np.bincount``: no per-character Python loop.
"""
from __future__ import annotations

import re

import numpy as np

SCRIPTS = ("latin", "cjk", "cyrillic", "other")
_NONE, _LATIN, _CJK, _CYRILLIC, _OTHER = range(5)

# Ideographs and kana: the scripts written without spaces between words (Hangul is spaced: "other").
# The radical blocks (U+2E80..U+2FDF) are symbols, not letters.
CJK_RANGES = [
    (0x3040, 0x30FF), (0x31F0, 0x31FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF), (0xFF66, 0xFF9F), (0x20000, 0x323AF),
]
_LATIN_RANGES = [(0x41, 0x5A), (0x61, 0x7A), (0xC0, 0xD6), (0xD8, 0xF6), (0xF8, 0x2AF), (0x1E00, 0x1EFF),
                 (0x2C60, 0x2C7F), (0xA720, 0xA7FF), (0xFF21, 0xFF3A), (0xFF41, 0xFF5A)]
_CYRILLIC_RANGES = [(0x400, 0x52F), (0x1C80, 0x1C8F), (0x2DE0, 0x2DFF), (0xA640, 0xA69F)]
# Above U+036F every code point counts as a letter of some "other" script unless it is in one of these
# blocks of marks, punctuation, symbols, surrogates, private use or emoji.
_NOT_LETTERS = [(0x2000, 0x2BFF), (0x2E00, 0x2E7F), (0x3000, 0x303F),
                (0xD800, 0xF8FF), (0xFE00, 0xFE6F), (0xFF00, 0xFF20), (0xFF3B, 0xFF40), (0xFF5B, 0xFF65),
                (0xFFF0, 0xFFFF), (0x1F000, 0x1FAFF)]


def _table() -> np.ndarray:
    """The script class of every code point from 0 to 0x10FFFF."""
    cls = np.full(0x110000, _OTHER, dtype=np.uint8)
    cls[:0x370] = _NONE
    for ranges, c in ((_NOT_LETTERS, _NONE), (_LATIN_RANGES, _LATIN), (_CYRILLIC_RANGES, _CYRILLIC),
                      (CJK_RANGES, _CJK)):
        for lo, hi in ranges:
            cls[lo:hi + 1] = c
    return cls


_CLASS_OF = _table()
_ASCII_LETTER = re.compile(r"[A-Za-z]")
_ASCII_LETTERS = bytes(range(65, 91)) + bytes(range(97, 123))
_NONE_FOUND = np.zeros(0, dtype=np.uint32)
CJK_CLASS = "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in CJK_RANGES)


def codepoints(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def profile(text: str) -> tuple[str, float, int, np.ndarray]:
    """(dominant script, share of CJK among letters, number of CJK characters, the distinct non-ASCII
    code points of the text).

    A document without any letter (digits, symbols) is "other"; ties go to the earlier script in
    ``SCRIPTS``. ASCII letters are counted with ``bytes.translate``; the other characters through
    their distinct code points, so the class table is consulted once per distinct character.
    """
    if text.isascii():
        return ("latin" if _ASCII_LETTER.search(text) else "other"), 0.0, 0, _NONE_FOUND
    raw = text.encode("utf-8", "surrogatepass")
    cps = codepoints(text)
    distinct, counts = np.unique(cps[cps > 127], return_counts=True)
    per_class = np.bincount(_CLASS_OF[distinct], weights=counts, minlength=5)[1:]
    per_class[0] += len(raw) - len(raw.translate(None, _ASCII_LETTERS))
    letters = per_class.sum()
    n_cjk = int(per_class[1])
    if letters == 0:
        return "other", 0.0, 0, distinct
    return SCRIPTS[int(np.argmax(per_class))], n_cjk / float(letters), n_cjk, distinct


def detect(text: str) -> tuple[str, float, int]:
    """(dominant script, share of CJK among letters, number of CJK characters)."""
    return profile(text)[:3]
