"""Per-document quality attributes (Gopher quality and repetition, C4 line rules, script), one pass.

A document is tokenized once. Punctuation and symbols are deleted (``bytes.translate`` for ASCII text,
one regex otherwise; newlines and spaces stay), then the result is split into lines and each line into
words: whitespace tokens, or, in text with CJK characters, one regex in which every ideograph or kana
is a word of its own. Every attribute derives from these lists and from whole-string counts (str
methods, numpy); there is no per-character Python loop and no per-word one outside ``repetition``'s
rare slow path.

Definitions (thresholds live in ``CleanConfig``, the rules in ``rules.py``):
- ``n_words``: words as above (Gopher's "non-symbol words": a token of only punctuation is no word);
  ``mean_word_len`` is the mean length, without punctuation, of the words that are not CJK characters;
- ``symbol_ratio``: Gopher's symbol-to-word ratio, the larger of its two (``#`` per word, and ``...`` +
  ``…`` per word), so that the one 0.1 threshold drops a document where either ratio exceeds it;
- ``alpha_words_ratio``: share of whitespace tokens that contain a letter (symbol-only and digit-only
  tokens do not);
- ``stopword_count``: how many distinct of {the, be, to, of, and, that, have, with} occur (any case);
- line ratios are over non-empty lines: bullet (starts with ``•`` or ``-``), ellipsis (ends with ``...``
  or ``…``), terminal punctuation (ends with . ? ! " ' or a CJK full stop, not ``...``), short (fewer
  than 3 words, C4), javascript/policy (C4's phrases);
- ``dup_*``: Gopher's duplicate lines (split on ``\\n+``) and paragraphs (split on ``\\n{2,}``), as a
  share of elements and of the document's characters; ``top_*`` / ``dup_*gram``: see ``repetition``.
"""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from itertools import chain

import numpy as np
import pyarrow as pa

from pipeline.clean.repetition import DUP_NS, TOP_NS, ngram_chars
from pipeline.clean.script import CJK_CLASS, profile

try:  # the C kernels (setup.py); optional: without them the Python code below computes the same values
    from pipeline.clean import _ctext
except ImportError:  # pragma: no cover - an install without a C compiler
    _ctext = None

# Bump on any change to the attributes or to normalization (it keys the cache).
# 2: symbol_ratio is the larger of the hash and ellipsis ratios.
ATTR_VERSION = "2"

_ASCII_SPACE = np.array([chr(c).isspace() for c in range(128)])  # str.split's ASCII whitespace
_ASCII_SYMBOLS = bytes(c for c in range(128) if not chr(c).isalnum() and not chr(c).isspace())
_CJK_WORDS = re.compile(f"[{CJK_CLASS}]|[^\\s{CJK_CLASS}]+")
# Tokens of CJK text: an ideograph carries the punctuation written after it, as a Latin word does.
_CJK_TOKENS = re.compile(f"[{CJK_CLASS}][^\\w\\s]*|[^\\s{CJK_CLASS}]+")
_PARAGRAPHS = re.compile(r"\n{2,}")
_STOPWORDS = tuple(f" {w} " for w in ("the", "be", "to", "of", "and", "that", "have", "with"))
_BULLETS = ("•", "-")
_TERMINAL = (".", "!", "?", '"', "'", "。", "！", "？", "．", "」", "』", "”", "’", "।", "؟", "۔")
_POLICY = ("javascript", "terms of use", "privacy policy", "cookie policy", "uses cookies",
           "use of cookies", "use cookies")
_POLICY_HINTS = ("javascript", "cookie", "terms of use", "privacy policy")  # every phrase contains one
SHORT_LINE_WORDS = 3  # C4: a line with fewer words is short

# Column name -> Arrow type, in output order. Every row of the stage carries all of them.
COLUMNS: dict[str, pa.DataType] = {
    "n_chars": pa.int64(), "n_lines": pa.int32(), "n_words": pa.int32(), "mean_word_len": pa.float64(),
    "symbol_ratio": pa.float64(), "bullet_lines_ratio": pa.float64(), "ellipsis_lines_ratio": pa.float64(),
    "alpha_words_ratio": pa.float64(), "stopword_count": pa.int8(),
    "dup_line_frac": pa.float64(), "dup_line_char_frac": pa.float64(),
    "dup_para_frac": pa.float64(), "dup_para_char_frac": pa.float64(),
    **{f"top_{n}gram_char_frac": pa.float64() for n in TOP_NS},
    **{f"dup_{n}gram_char_frac": pa.float64() for n in DUP_NS},
    "terminal_punct_lines_ratio": pa.float64(), "short_lines_ratio": pa.float64(),
    "has_lorem_ipsum": pa.bool_(), "javascript_policy_lines_ratio": pa.float64(),
    "has_curly_bracket": pa.bool_(), "max_line_len": pa.int32(),
    "script": pa.string(), "cjk_ratio": pa.float64(),
}


def kernels_built() -> bool:
    """Whether the C kernels are built (``pip install`` compiles them where a C compiler exists)."""
    return _ctext is not None


def compute(text: str, compiled: bool = True) -> tuple:
    """All attributes of one (normalized) document, in ``COLUMNS`` order.

    Text without CJK characters goes to the C kernels when they are built (``compiled=False`` forces
    the Python code, the reference the tests compare them with); text with CJK characters, or with
    digits outside ASCII (``str.isdigit`` knows them, the kernel does not), always takes the Python path.
    """
    n_chars = len(text)
    if not text or text.isspace():
        return empty_row(n_chars)
    script, cjk_ratio, n_cjk, non_ascii = profile(text)
    bare = _without_symbols(text, non_ascii)
    if compiled and _ctext is not None and not n_cjk and not any(map(_is_digit, non_ascii.tolist())):
        return _compute_compiled(text, bare, script, cjk_ratio)
    lines = text.split("\n")
    split = _CJK_WORDS.findall if n_cjk else str.split
    line_words = list(map(split, bare.split("\n")))  # "bare" keeps every newline: lines align
    words = list(chain.from_iterable(line_words))
    n_words = len(words)
    n_tokens = _token_count(text, n_cjk, non_ascii)  # whitespace tokens, symbol-only ones included
    nonempty = [line for line in lines if line and not line.isspace()]
    n_lines = len(nonempty)
    long_lines = sum(c >= SHORT_LINE_WORDS for c in map(len, line_words))
    low = text.lower()
    # In CJK text the words of an n-gram are not separated by spaces.
    top, dup = ngram_chars(words, sep=0 if script == "cjk" else 1)
    return (
        n_chars, n_lines, n_words, _ratio(len("".join(words)) - n_cjk, n_words - n_cjk),
        _symbol_ratio(text, n_words),
        sum(line.lstrip().startswith(_BULLETS) for line in nonempty) / n_lines,
        sum(line.endswith(("...", "…")) for line in nonempty) / n_lines,
        _ratio(n_words - sum(map(str.isdigit, words)), n_tokens),
        _stopwords(words),
        *_duplicates(nonempty, n_chars),
        *_duplicates(_paragraphs(text), n_chars),
        *[c / n_chars for c in top], *[c / n_chars for c in dup],
        sum(line.endswith(_TERMINAL) and not line.endswith("...") for line in nonempty) / n_lines,
        (n_lines - long_lines) / n_lines,
        "lorem ipsum" in low,
        _policy_lines(low) / n_lines,
        "{" in text,
        max(map(len, lines)),
        script, cjk_ratio,
    )


def _symbol_ratio(text: str, n_words: int) -> float:
    """max(hash / words, ellipsis / words): Gopher has one rule for each (both at 0.1); their sum would drop
    a document with 6% of each, which passes both."""
    return max(_ratio(text.count("#"), n_words), _ratio(text.count("...") + text.count("…"), n_words))


def _compute_compiled(text: str, bare: str, script: str, cjk_ratio: float) -> tuple:
    """``compute`` for text without CJK characters, by the C kernels (same definitions, same floats)."""
    n_chars = len(text)
    raw = text.encode("utf-8", "surrogatepass")
    (n_words, word_chars, digit_words, stopwords, long_lines, n_tokens, *grams) = _ctext.word_stats(
        bare.encode("utf-8", "surrogatepass"), raw, 1)
    (n_lines, bullets, ellipsis, terminal, max_line_len, dup_lines, dup_line_chars, n_paras, dup_paras,
     dup_para_chars) = _ctext.line_stats(raw)
    low = text.lower()
    return (
        n_chars, n_lines, n_words, _ratio(word_chars, n_words),
        _symbol_ratio(text, n_words),
        bullets / n_lines, ellipsis / n_lines, _ratio(n_words - digit_words, n_tokens), stopwords,
        dup_lines / n_lines, dup_line_chars / n_chars,
        _ratio(dup_paras, n_paras), dup_para_chars / n_chars,
        *[c / n_chars for c in grams],
        terminal / n_lines, (n_lines - long_lines) / n_lines,
        "lorem ipsum" in low, _policy_lines(low) / n_lines, "{" in text, max_line_len,
        script, cjk_ratio,
    )


def _without_symbols(text: str, non_ascii: np.ndarray) -> str:
    """The text with punctuation and symbols (Unicode P* and S*, and ``_``) deleted, whitespace kept.

    ASCII symbols go in one ``bytes.translate`` (UTF-8 never has ASCII bytes inside a multi-byte
    character); the few distinct non-ASCII symbols (``non_ascii``: the distinct code points above 127)
    are then removed one by one.
    """
    if not len(non_ascii):
        return text.encode("ascii").translate(None, _ASCII_SYMBOLS).decode("ascii")
    bare = text.encode("utf-8", "surrogatepass").translate(None, _ASCII_SYMBOLS).decode("utf-8", "surrogatepass")
    for cp in non_ascii.tolist():
        if _is_symbol(cp):
            bare = bare.replace(chr(cp), "")
    return bare


def _token_count(text: str, n_cjk: int, non_ascii: np.ndarray) -> int:
    if n_cjk:
        return len(_CJK_TOKENS.findall(text))
    if len(non_ascii):
        return len(text.split())
    # ASCII: count whitespace-to-text transitions instead of building the list of tokens.
    space = _ASCII_SPACE[np.frombuffer(text.encode("ascii"), dtype=np.uint8)]
    return int(np.count_nonzero(space[:-1] & ~space[1:])) + (not space[0])


@lru_cache(maxsize=65536)
def _is_symbol(cp: int) -> bool:
    return unicodedata.category(chr(cp))[0] in "PS"


@lru_cache(maxsize=65536)
def _is_digit(cp: int) -> bool:
    return chr(cp).isdigit()


def _ratio(a: int, b: int) -> float:
    return a / b if b else 0.0


def _paragraphs(text: str) -> list[str]:
    parts = _PARAGRAPHS.split(text) if "\n\n\n" in text else text.split("\n\n")
    return [p for p in parts if p and not p.isspace()]


def _stopwords(words: list[str]) -> int:
    padded = f" {' '.join(words).lower()} "
    return sum(w in padded for w in _STOPWORDS)


def _duplicates(elements: list[str], n_chars: int) -> tuple[float, float]:
    """Gopher: (share of elements equal to an earlier one, share of characters in those)."""
    if not elements:
        return 0.0, 0.0
    unique = set(elements)
    dup_chars = sum(map(len, elements)) - sum(map(len, unique))
    return (len(elements) - len(unique)) / len(elements), dup_chars / n_chars


def _policy_lines(low: str) -> int:
    if not any(p in low for p in _POLICY_HINTS):
        return 0
    return sum(any(p in line for p in _POLICY) for line in low.split("\n"))


def empty_row(n_chars: int = 0) -> tuple:
    """The attributes of a document without any non-whitespace character."""
    floats = [0.0] * (4 + len(TOP_NS) + len(DUP_NS) + 2)
    return (n_chars, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0, *floats, False, 0.0, False, 0, "other", 0.0)
