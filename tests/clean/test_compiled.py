"""The C kernels (pipeline/clean/_ctext.c) against the Python reference: the same attributes, exactly."""
from __future__ import annotations

import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.clean import attributes
from pipeline.clean.attributes import COLUMNS, compute
from pipeline.clean.repetition import ngram_chars

_ctext = attributes._ctext
pytestmark = pytest.mark.skipif(_ctext is None, reason="the C kernels are not built (no C compiler at install)")

SPACES = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]
# Pieces that exercise every branch: ASCII and Unicode whitespace, lines and paragraphs, bullets,
# ellipses, terminal punctuation (ASCII and not), digits, stop words in any case, symbols, accented
# and Cyrillic letters, policy phrases, and repeated words for the n-gram statistics.
PIECES = (["the", "The", "THE", "and", "with", "have", "that", "of", "to", "be", "cat", "sat", "mat", "a",
           "é", "naïve", "ßtraße", "мир", "42", "2024", "x1", "#", "...", "…", "•", "-", "- item", "• item",
           ".", "!", "?", '"', "'", "。", "”", "’", "؟", "lorem ipsum", "Lorem Ipsum", "javascript", "cookie policy",
           "{", "}", "_", "@", "(", ")", "–", "😀", "\t", "\n", "\n\n", "\n\n\n", " \n", "\n ", "  "]
          + SPACES)


def _rows_agree(text: str) -> None:
    fast, slow = compute(text), compute(text, compiled=False)
    diff = {name: (a, b) for name, a, b in zip(COLUMNS, fast, slow) if a != b}
    assert not diff, f"{text!r}: {diff}"


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=120), st.sampled_from([" ", "", "\n"]))
def test_compiled_attributes_equal_python(pieces, glue):
    _rows_agree(glue.join(pieces))


def test_compiled_attributes_on_hand_made_documents():
    for text in [
        "The cat sat on the mat.\nThe cat sat on the mat.\n\nThe cat sat on the mat!",
        "- one\n- two\n• three...\n  - four …\n\n\n\nlast line without end",
        "a b c d e f g h i j a b c d e f g h i j a b c d e f g h i j k",  # dup 5..10-grams
        "x",
        "\u3000 lead\u2028and\u00a0nbsp\u0085next\u1680ogham\u202fnarrow\u205fmath",
        "Price: 1,000 dollars; ratio 3.5 — OK? 'yes'\n\"quoted\"\n“curly”",
        "cookie policy\nWe use cookies.\nJavaScript is required.\nLOREM IPSUM dolor",
        "\n\n  \n\t\nword\n\n \n\n",
    ]:
        _rows_agree(text)


def test_text_with_cjk_or_other_digits_takes_the_python_path(monkeypatch):
    calls = []
    monkeypatch.setattr(attributes, "_compute_compiled", lambda *a: calls.append(a) or None)
    compute("中文的句子。The end.")
    compute("Superscript two ² and Arabic digits ٣٤ here.")
    assert calls == []
    compute("Plain English, with an accent: café.")
    assert len(calls) == 1


def test_whitespace_is_python_whitespace():
    """Every code point is whitespace for the kernel exactly when ``str.isspace`` says so."""
    for c in range(0, sys.maxunicode + 1, 2048):
        chunk = [chr(k) for k in range(c, min(c + 2048, sys.maxunicode + 1)) if not 0xD800 <= k <= 0xDFFF]
        text = "a" + "a".join(chunk) + "a"
        n_words = _ctext.word_stats(text.encode(), b"", 1)[0]
        assert n_words == len(text.split()), f"code points {c:#x}..{c + 2047:#x}"
    for space in SPACES:
        assert _ctext.word_stats(f"a{space}b".encode(), f"a{space}b".encode(), 1)[:6] == (2, 2, 0, 0, 0, 2)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["a", "bb", "ccc", "a", "dddd", "e", "ü"]), min_size=0, max_size=90),
       st.sampled_from([0, 1]))
def test_ngram_characters_equal_the_python_scan(words, sep):
    stats = _ctext.word_stats(" ".join(words).encode(), b"", sep)
    top, dup = ngram_chars(words, sep=sep)
    assert list(stats[6:]) == top + dup
    assert stats[:2] == (len(words), sum(map(len, words)))


def test_long_document_with_many_repeats():
    words = [("x", "yy", "zzz")[(i * i + i // 7) % 3] for i in range(7000)]
    stats = _ctext.word_stats(" ".join(words).encode(), b"", 1)
    assert list(stats[6:]) == sum(ngram_chars(words), [])
