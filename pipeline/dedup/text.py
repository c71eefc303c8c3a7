"""Text simplification before shingling, and detection of scripts written without spaces.

``simplify`` follows datatrove's ``simplify_text`` idea: lowercase, NFKD with the combining marks dropped
(diacritics removed) and compatibility forms folded (full-width Latin, ligatures, superscripts), punctuation
and symbols deleted ("don't" → "dont"), every digit folded to ``0``, whitespace of any kind turned into plain
spaces. The rule is applied character by character (so the context rule for a final capital sigma does not
apply), through a translation table filled lazily, one entry per distinct character ever seen. Three exact
routes, fastest first: ASCII text through ``bytes.translate``; mostly-ASCII text by rewriting only its few
non-ASCII characters; anything else through ``str.translate``.
The result is UTF-8 bytes because the word hashing in ``shingles.py`` works on bytes in numpy.
"""
from __future__ import annotations

import re
import unicodedata

import numpy as np

# Anything that is neither a word character nor whitespace; "_" counts as punctuation here. After NFKD the
# combining marks are separate characters that are not \w, so this also strips the diacritics.
_PUNCT = re.compile(r"[^\w\s]|_")
_DIGIT = re.compile(r"\d")
_SPACE = re.compile(r"\s")


def simplify_char(ch: str) -> str:
    """The rule for one character: lower, NFKD, drop punctuation and marks, digits → 0, spaces → " ".

    NFKD, not NFD, so that a text copied in full-width Latin ("ｔｅｘｔ") or with ligatures ("ﬁ") simplifies
    like the plain one. It can yield capitals ("ℌ" → "H"), hence the second ``lower``; a non-space character
    whose decomposition starts or ends with a space (the spacing accents "¨", "´") gives no space."""
    s = unicodedata.normalize("NFKD", ch.lower()).lower()
    s = _PUNCT.sub("", s)
    s = _DIGIT.sub("0", s)
    s = _SPACE.sub(" ", s)
    return s if _SPACE.match(ch) else s.strip(" ")


_TABLE: dict[int, str] = {}  # code point → its simplified form, for every character seen so far
_SEEN: set[str] = set()


def _learn(chars: set[str]) -> None:
    for ch in chars - _SEEN:
        _TABLE[ord(ch)] = simplify_char(ch)
        _SEEN.add(ch)


def _ascii_bytes_table() -> tuple[bytes, bytes]:
    table, delete = bytearray(range(256)), bytearray()  # bytes >= 0x80 map to themselves
    for code in range(128):
        out = simplify_char(chr(code))
        if out:
            assert len(out) == 1, (code, out)
            table[code] = ord(out)
        else:
            delete.append(code)
    return bytes(table), bytes(delete)


_BYTES_TABLE, _BYTES_DELETE = _ascii_bytes_table()
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _fix_char(m: re.Match) -> str:
    ch = m.group()
    if ch not in _SEEN:
        _learn({ch})
    return _TABLE[ord(ch)]


def simplify_unicode(text: str) -> str:
    """The general route: any script. Runs of whitespace stay runs of spaces."""
    _learn(set(text))
    return text.translate(_TABLE)


def simplify(text: str) -> bytes:
    """``simplify_unicode(text).encode()``, by the fastest exact route for this text."""
    if text.isascii():
        return text.encode("ascii").translate(_BYTES_TABLE, _BYTES_DELETE)
    if len(text.encode()) - len(text) <= len(text) // 16:
        # Mostly ASCII (an accent or a dash here and there): rewrite only the non-ASCII characters, then
        # apply the byte table, which leaves bytes >= 0x80 alone and maps the rule's ASCII outputs to
        # themselves.
        return _NON_ASCII.sub(_fix_char, text).encode().translate(_BYTES_TABLE, _BYTES_DELETE)
    return simplify_unicode(text).encode()


# Scripts written without spaces between words: word n-grams are meaningless there, so such documents are
# shingled by characters. Han (CJK ideographs and their extensions), kana, Thai, Lao, Tibetan, Myanmar,
# Khmer. Hangul is absent on purpose: Korean separates words with spaces. Every bound is a multiple of 32,
# so membership is one lookup per 32-code-point block.
_UNSPACED_RANGES = [
    (0x0E00, 0x0F00),    # Thai, Lao
    (0x0F00, 0x1000),    # Tibetan
    (0x1000, 0x10A0),    # Myanmar
    (0x1780, 0x1800),    # Khmer
    (0x3040, 0x3100),    # Hiragana, Katakana
    (0x3400, 0x4DC0),    # CJK extension A
    (0x4E00, 0xA000),    # CJK unified ideographs
    (0xF900, 0xFB00),    # CJK compatibility ideographs
    (0x20000, 0x323C0),  # CJK extensions B-H
]
_BLOCK = 5
_UNSPACED_BLOCKS = np.zeros(0x110000 >> _BLOCK, dtype=bool)
for _lo, _hi in _UNSPACED_RANGES:
    assert _lo % (1 << _BLOCK) == 0 and _hi % (1 << _BLOCK) == 0
    _UNSPACED_BLOCKS[_lo >> _BLOCK:_hi >> _BLOCK] = True
_MAYBE_UNSPACED = re.compile("[\u0e00-\U0010ffff]")


def codepoints(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def is_unspaced(cps: np.ndarray) -> np.ndarray:
    """True for code points of scripts written without spaces."""
    return _UNSPACED_BLOCKS[cps >> _BLOCK]


def unspaced_share(text: str) -> float:
    """Share of the characters above U+0020 that belong to an unspaced script (0.0 for none)."""
    if text.isascii() or _MAYBE_UNSPACED.search(text) is None:  # one C-level scan rules out most texts
        return 0.0
    cps = codepoints(text)
    visible = cps[cps > 0x20]
    return float(np.count_nonzero(is_unspaced(visible))) / len(visible)
