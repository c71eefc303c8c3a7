"""Simplification, script detection and shingle hashing."""
from __future__ import annotations

import numpy as np

from pipeline.dedup import text
from pipeline.dedup.shingles import ShingleSpec, shingle_hashes

SPEC = ShingleSpec()


def test_ascii_fast_path_equals_unicode_rule_for_every_ascii_char():
    every = "".join(chr(c) for c in range(128))
    assert text.simplify(every) == text.simplify_unicode(every).encode()
    assert text.simplify("Hello, World! It's 1984_x\tend.") == b"hello world its 0000x end"


def test_all_routes_agree_and_fold_diacritics():
    mostly_ascii = "The café – naïve résumé, 42 times. " * 20          # few non-ASCII characters
    heavy = "Ἀθῆναι Σωκράτης ΦΙΛΟΣΟΦΟΣ — Москва 2024 ёлка!"             # many non-ASCII characters
    for t in (mostly_ascii, heavy):
        assert text.simplify(t) == text.simplify_unicode(t).encode()
    assert text.simplify("Café NAÏVE résumé") == b"cafe naive resume"
    assert text.simplify("Ёлка\u00a0Москва") == "елка москва".encode()  # NBSP becomes a plain space


def test_unspaced_share_detects_cjk_not_latin_or_korean():
    assert text.unspaced_share("plain English text") == 0.0
    assert text.unspaced_share("床前明月光，疑是地上霜。") > 0.8
    assert text.unspaced_share("東京は日本の首都です") == 1.0
    assert text.unspaced_share("한국어는 띄어쓰기를 합니다") == 0.0
    assert text.unspaced_share("Tokyo 東京") == 2 / 7  # 2 of 7 visible characters


def test_word_ngram_counts_and_normalization_invariance():
    words = " ".join(f"w{chr(97 + i)}x" for i in range(20))  # distinct letters: digits would fold to 0
    sh = shingle_hashes([words, words.upper().replace(" ", " , "), "one two three", "", "  ... !!"], SPEC)
    assert sh.counts().tolist() == [16, 16, 1, 0, 0]  # n - 4 five-grams; a short doc → one shingle
    a, b = sh.hashes[0:16], sh.hashes[16:32]
    assert np.array_equal(a, b)  # case and punctuation do not change shingles
    assert len(np.unique(a)) == 16
    assert not sh.unspaced.any()


def test_batch_composition_does_not_change_a_documents_hashes():
    docs = [f"alpha beta gamma delta epsilon zeta eta theta {i} " * (i + 1) for i in range(7)]
    docs[3] = "春眠不觉晓处处闻啼鸟夜来风雨声花落知多少"
    together = shingle_hashes(docs, SPEC)
    for i, d in enumerate(docs):
        alone = shingle_hashes([d], SPEC)
        assert np.array_equal(alone.hashes, together.hashes[together.offsets[i]:together.offsets[i + 1]])
    assert together.unspaced.tolist() == [False, False, False, True, False, False, False]


def test_cjk_uses_character_ngrams():
    poem = "床前明月光，疑是地上霜。举头望明月，低头思故乡。"  # 20 Han characters, punctuation removed
    sh = shingle_hashes([poem, poem.replace("，", " ")], SPEC)
    assert sh.unspaced.tolist() == [True, True]
    assert sh.counts().tolist() == [16, 16]
    assert np.array_equal(sh.hashes[:16], sh.hashes[16:])


def test_word_order_matters_and_distinct_words_differ():
    sh = shingle_hashes(["a b c d e", "e d c b a", "a b c d f"], SPEC)
    assert len(set(sh.hashes.tolist())) == 3


def test_compatibility_forms_fold_like_the_plain_text():
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in "Hello")
    folded = text.simplify(f"{full_width} \ufb01le \u2168 x\u00b2 \u210cilbert a\u00a8b")
    assert folded == b"hello file ix x0 hilbert ab"
    mixed = "plain text " * 20 + "\uff21\uff22 \ufb01 \u2460 \u00bd \u210c \u00b4 \ufdfa"
    assert text.simplify(mixed) == text.simplify_unicode(mixed).encode()  # the mostly-ASCII route agrees
    every = "".join(chr(c) for c in range(0x20, 0x30000) if not 0xD800 <= c < 0xE000)
    once = text.simplify_unicode(every)
    assert text.simplify_unicode(once) == once  # idempotent: NFKD output may be capitals, lowered again
