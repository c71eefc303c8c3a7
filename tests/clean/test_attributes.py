"""Attribute values on hand-made texts, and the vectorized repetition scan against a naive reference."""
from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.clean.attributes import COLUMNS, compute, empty_row
from pipeline.clean.repetition import ngram_chars
from pipeline.clean.script import detect


def attrs(text: str) -> dict:
    row = compute(text)
    assert len(row) == len(COLUMNS)
    return dict(zip(COLUMNS, row))


def test_word_and_symbol_counts():
    a = attrs("Hello, world -- #tag ... 42 foo_bar!")
    # tokens: Hello, | world | -- | #tag | ... | 42 | foo_bar!  -> "--" and "..." are no words
    assert a["n_words"] == 5
    assert a["mean_word_len"] == (5 + 5 + 3 + 2 + 6) / 5  # punctuation and "_" are not counted
    assert a["symbol_ratio"] == 1 / 5  # one "#" and one "...": Gopher's two ratios, the larger
    six_each = " ".join(["word"] * 88 + ["#tag"] * 6 + ["wait..."] * 6)
    assert attrs(six_each)["symbol_ratio"] == pytest.approx(0.06)  # 6% and 6%: passes both of Gopher's rules
    assert a["alpha_words_ratio"] == 4 / 7  # "42" has no letter; neither have the two symbol tokens
    assert (a["n_chars"], a["n_lines"], a["script"]) == (36, 1, "latin")


def test_stopwords_are_distinct_and_case_insensitive():
    assert attrs("The cat and THE dog, and the bird.")["stopword_count"] == 2
    assert attrs("Cats chase mice.")["stopword_count"] == 0
    assert attrs("to be, or not to be: that is... with have of")["stopword_count"] == 6


def test_line_ratios():
    text = "- one item here\n• two items here...\nA full sentence ends here.\nshort line\n\nA quote ends here.\"\nok"
    a = attrs(text)
    assert a["n_lines"] == 6
    assert a["bullet_lines_ratio"] == 2 / 6
    assert a["ellipsis_lines_ratio"] == 1 / 6
    assert a["terminal_punct_lines_ratio"] == 2 / 6  # "..." is no terminal punctuation
    assert a["short_lines_ratio"] == 2 / 6  # "short line" and "ok" have fewer than 3 words
    assert a["max_line_len"] == len("A full sentence ends here.")


def test_c4_flags_and_policy_lines():
    a = attrs("Please enable JavaScript.\nRead our Privacy Policy now.\nThis page uses cookies.\nplain {text}")
    assert a["javascript_policy_lines_ratio"] == 3 / 4
    assert a["has_curly_bracket"] and not a["has_lorem_ipsum"]
    assert attrs("Some Lorem Ipsum filler")["has_lorem_ipsum"]


def test_duplicate_lines_and_paragraphs():
    text = "alpha line\nbeta line\nalpha line\n\nalpha line\nbeta line\nalpha line\n\ngamma"
    a = attrs(text)
    # lines: 7 non-empty, 4 repeat an earlier one (alpha x3, beta x1)
    assert a["dup_line_frac"] == 4 / 7
    assert a["dup_line_char_frac"] == (3 * 10 + 9) / len(text)
    # paragraphs: 3, the second repeats the first
    assert a["dup_para_frac"] == 1 / 3
    assert a["dup_para_char_frac"] == len("alpha line\nbeta line\nalpha line") / len(text)


def test_top_and_duplicate_ngrams():
    text = "a b c a b c a b c x"
    a = attrs(text)
    assert a["top_2gram_char_frac"] == 3 * 3 / len(text)  # "a b" three times
    assert a["top_4gram_char_frac"] == 2 * 7 / len(text)  # "a b c a" twice
    # 5-grams from word 0, 1, 2 are new; the one at word 3 repeats word 0's: 5 chars, jump to 8 (end).
    assert a["dup_5gram_char_frac"] == 5 / len(text)
    assert a["dup_6gram_char_frac"] == 6 / len(text)  # same story, one word longer
    assert a["dup_7gram_char_frac"] == 0.0  # the four 7-grams are all different


def test_cjk_words_are_characters():
    a = attrs("床前明月光，疑是地上霜。\n举头望明月，低头思故乡。")
    assert (a["script"], a["cjk_ratio"], a["n_words"]) == ("cjk", 1.0, 20)
    assert a["mean_word_len"] == 0.0  # no word outside CJK
    assert a["alpha_words_ratio"] == 1.0  # punctuation rides on the character before it
    assert a["terminal_punct_lines_ratio"] == 1.0
    assert a["short_lines_ratio"] == 0.0
    # "明月" twice; CJK n-grams have no separator: 2 chars x 2
    assert a["top_2gram_char_frac"] == 4 / 25


def test_mean_word_len_ignores_cjk_characters():
    a = attrs("Seven words of plain English text here 中文字符")
    assert (a["n_words"], a["mean_word_len"]) == (11, (5 + 5 + 2 + 5 + 7 + 4 + 4) / 7)


def test_scripts():
    assert detect("Привет, как дела? ok")[0] == "cyrillic"
    assert detect("مرحبا بالعالم")[0] == "other"
    assert detect("Ελληνικά κείμενα")[0] == "other"
    assert detect("12345 !!!")[0] == "other"
    script, ratio, n_cjk = detect("An English sentence with 中文 inside.")
    assert (script, n_cjk) == ("latin", 2) and 0 < ratio < 0.1
    assert detect("ひらがなとカタカナと漢字")[:2] == ("cjk", 1.0)


def test_empty_and_whitespace_documents():
    assert compute("") == empty_row(0)
    assert compute(" \n\t ") == empty_row(4)
    assert attrs("?!")["n_words"] == 0 and attrs("?!")["mean_word_len"] == 0.0


def _reference(words: list[str], sep: str) -> tuple[list[int], list[int]]:
    """Gopher repetition the straightforward way (as datatrove writes it), for comparison."""
    top = []
    for n in (2, 3, 4):
        grams = [sep.join(words[i:i + n]) for i in range(len(words) - n + 1)]
        gram, count = Counter(grams).most_common(1)[0] if grams else ("", 0)
        top.append(len(gram) * count)
    dup = []
    for n in range(5, 11):
        seen, i, chars = set(), 0, 0
        while i < len(words) - n + 1:
            gram = tuple(words[i:i + n])
            if gram in seen:
                chars += sum(map(len, gram))
                i += n
            else:
                seen.add(gram)
                i += 1
        dup.append(chars)
    return top, dup


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["a", "bb", "ccc", "a", "dddd", "e"]), min_size=2, max_size=80),
       st.sampled_from([" ", ""]))
def test_repetition_matches_naive_scan(words, sep):
    assert ngram_chars(words, sep=len(sep)) == _reference(words, sep)


def test_repetition_on_a_long_document_uses_the_hashed_path():
    words = [("x", "yy", "zzz")[(i * i + i // 7) % 3] for i in range(7000)]  # 7000 ** 5 > 2 ** 63
    assert ngram_chars(words) == _reference(words, " ")
