"""Tokenizer: exact round trips (property-based), specials never from text, chunking keeps the ids."""
from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.tokenize import segment
from pipeline.tokenize.tokenizer import Tokenizer

EMOJI = "😀👍🏽🇫🇷👨‍👩‍👧❤️"
TRICKY = ["▁", "▁▁", " ", "  ", "\n", "\r\n", "\t", "\x00", "<mask>", "<sep>", "<cls>", "<extra_id_0>",
          "<extra_id_7>", "<extra_id_99>", "<mas", "k>", "<", "日本語", "天地", "é", "e\u0301", "\ufeff",
          "\u3000", "\u00a0", "123", "мир", EMOJI, "a", "the", "def", "    "]
texts_any = st.text(max_size=120)  # every code point but surrogates
texts_cjk_emoji = st.text(alphabet=st.sampled_from(list("天地玄黃宇宙日本語のテキスト한국어" + EMOJI + "▁ \n")), max_size=80)
texts_tricky = st.lists(st.sampled_from(TRICKY), max_size=30).map("".join)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.one_of(texts_any, texts_cjk_emoji, texts_tricky))
def test_roundtrip_is_exact_and_specials_never_come_from_text(tok, text):
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert not set(ids) & set(tok.all_special_ids), [tok.id_to_piece(i) for i in ids]
    assert tok.unk_id not in ids


@SETTINGS
@given(st.one_of(texts_any, texts_tricky, texts_cjk_emoji))
def test_chunked_encoding_equals_whole_text_encoding(tok, text):
    """Cutting after newlines and before space runs never changes the ids (segment's claim)."""
    whole = copy.copy(tok)
    whole.chunk_chars = None
    chunked = copy.copy(tok)
    chunked.chunk_chars = 3  # cut almost everywhere a cut is allowed
    assert chunked.encode(text) == whole.encode(text)


def test_model_passes_the_chunk_safety_checks(tok):
    assert tok.chunk_chars == segment.CHUNK_CHARS
    assert tok.has_byte_fallback


def test_escapes_use_byte_pieces_only_where_sentencepiece_would_alter_the_text(tok):
    raw = tok.sp.encode("a▁b <mask> c")
    assert tok.sp.decode(raw) == "a b <mask> c"  # sentencepiece alone: ▁ becomes a space, <mask> an id
    assert tok.mask_id in raw
    ids = tok.encode("a▁b <mask> c")
    pieces = [tok.id_to_piece(i) for i in ids]
    assert pieces[pieces.index("<0xE2>"):pieces.index("<0xE2>") + 3] == ["<0xE2>", "<0x96>", "<0x81>"]
    assert "".join(pieces).count("<0x") == 3 + len("<mask>")
    assert tok.encode("plain text") == tok.sp.encode("plain text")  # no escape, no change


def test_cjk_and_emoji_never_become_unk(tok, h):
    text = h.CJK + "。" + EMOJI + "𠀀𪚥"  # incl. CJK extension B (4-byte) characters
    ids = tok.encode(text)
    assert tok.unk_id not in ids and tok.decode(ids) == text


def test_specials_have_the_fixed_layout(tok):
    assert tok.special_ids == {"pad": 0, "unk": 1, "bos": 2, "eos": 3, "mask": 4, "sep": 5, "cls": 6}
    assert tok.sentinel_ids == list(range(7, 15))
    assert tok.all_special_ids == list(range(15))
    assert tok.decode([tok.mask_id, tok.sentinel_ids[0]]) == "<mask><extra_id_0>"
    assert tok.decode([tok.bos_id, tok.eos_id, tok.pad_id]) == ""


def test_encode_batch_and_flat_agree_with_encode(tok, corpus):
    texts = corpus[:20] + ["", "▁x", "a" * 9000 + " b" * 3000]
    batch = tok.encode_batch(texts, eos=True, num_threads=2)
    assert batch == [tok.encode(t, eos=True) for t in texts]
    flat, lengths = tok.encode_flat(texts, bos=True)
    assert lengths.tolist() == [len(tok.encode(t)) + 1 for t in texts]
    assert flat.dtype == np.int32 and flat[0] == tok.bos_id
    assert tok.encode_batch([]) == []


def test_token_bytes_sum_to_the_utf8_size(tok, corpus):
    table = tok.token_bytes()
    assert table[tok.all_special_ids].sum() == 0
    for text in corpus[:30] + ["▁ <mask> 😀 ", "\n\n  x"]:
        assert table[tok.encode(text, eos=True)].sum() == len(text.encode("utf-8"))


def test_surrogates_are_rejected_not_mangled(tok):
    with pytest.raises(UnicodeEncodeError):
        tok.encode("a\ud800b")


def test_from_dir_accepts_output_tokenizer_folder_and_file(built, tok):
    out = built[0]
    for where in (out, out / "tokenizer", out / "tokenizer" / "tokenizer.model"):
        assert Tokenizer.from_dir(where).digest == tok.digest
    with pytest.raises(FileNotFoundError, match="no tokenizer.model"):
        Tokenizer.from_dir(out / "train")


def test_piece_kinds_come_from_the_model_proto(tok):
    from pipeline.tokenize import modelproto

    types = modelproto.piece_types(tok.model_bytes)
    assert len(types) == tok.vocab_size and modelproto.model_type(tok.model_bytes) == "bpe"
    assert [i for i, t in enumerate(types) if t == modelproto.BYTE] == [i for i in range(tok.vocab_size)
                                                                          if tok.sp.is_byte(i)]
    assert [i for i, t in enumerate(types) if t in (modelproto.CONTROL, modelproto.UNKNOWN)] == [0, 1, 2, 3]
    assert [i for i, t in enumerate(types) if t == modelproto.USER_DEFINED] == list(range(4, 15))


def test_cut_points_respect_the_rules():
    text = "aaaa bbbb\ncccc  dddd    eeee"
    cuts = segment.cut_points(text, 6)
    for c in cuts:
        assert text[c - 1] == "\n" or (text[c] == " " and text[c - 1] != " "), (c, text[c - 1:c + 1])
    assert "".join(segment.chunks(text, 6)) == text
    assert segment.cut_points("x" * 50, 10) == []  # nowhere to cut: one chunk
