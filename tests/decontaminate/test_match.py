"""The n-gram index and scan: what counts as a shared n-gram, numerically."""
from __future__ import annotations

import json

import numpy as np

from pipeline.decontaminate.index import GramSpec, build_index
from pipeline.decontaminate.match import scan
from pipeline.decontaminate.ngrams import char_stream, window_text, windows, word_stream
from pipeline.decontaminate.shards import mark

SPEC = GramSpec(n={"word": 13, "char": 50}, min_len={"word": 8, "char": 20})
TEST = ("The committee approved the new budget after a long debate that lasted well into the night, "
        "and the chair thanked every member for their patience.")  # 25 words


def test_verbatim_and_repunctuated_copies_match_with_the_shared_ngram():
    index = build_index([("news:test", [TEST])], SPEC)
    assert len(index.keys) == 25 - 13 + 1 and index.lengths == {"word": [13], "char": []}
    docs = [f"Minutes. {TEST} Adjourned.",
            "the COMMITTEE approved -- the new budget, after a long debate; that lasted well (into) the NIGHT!",
            "An unrelated text about gardens, rain and the habits of small birds in early spring mornings."]
    m = scan(docs, index)
    assert m.doc.tolist() == [0, 1]
    assert m.hits.tolist() == [13, 4]  # the whole copy: all 13 windows; the 16-word prefix: 4
    assert m.start.tolist() == [1, 0] and m.length.tolist() == [13, 13]
    assert window_text(docs[1], "word", 0, 13) == \
        "the committee approved the new budget after a long debate that lasted well"
    assert index.sources_of(int(m.mask[0])) == ["news:test"]


def test_overlap_shorter_than_n_is_not_a_match():
    index = build_index([("news:test", [TEST])], SPEC)
    twelve = " ".join(TEST.split()[:12])
    assert scan([f"Prefix words here {twelve} and then something else entirely different."], index).doc.size == 0
    thirteen = " ".join(TEST.split()[:13])
    assert scan([f"Prefix words here {thirteen} and then something else."], index).doc.tolist() == [0]


def test_short_eval_texts_match_whole_from_min_words_and_not_below():
    texts = ["a charming and funny movie with a great cast",   # 9 words: protected as a whole
             "a truly bad movie"]                              # 4 words: too short to protect
    index = build_index([("sst:test", texts)], SPEC)
    assert index.lengths["word"] == [9] and index.unprotected == 1 and len(index.keys) == 1
    m = scan(["Critics said: A charming and funny movie, with a great cast!",
              "it was a truly bad movie indeed",
              "a charming and funny movie with a cast"], index)  # 8 of the 9 words: no match
    assert m.doc.tolist() == [0] and m.length.tolist() == [9]


def test_cjk_uses_character_ngrams_over_han_characters_only():
    poem = "床前明月光疑是地上霜举头望明月低头思故乡" * 3  # 60 Han characters
    spec = GramSpec(n={"word": 13, "char": 50}, min_len={"word": 8, "char": 20})
    index = build_index([("poems:test", [poem])], spec)
    assert index.lengths["char"] == [50] and len(index.keys) == len(set(
        poem[i:i + 50] for i in range(11)))
    quoted = "A note (李白): " + "，".join(poem[i:i + 5] for i in range(0, 60, 5)) + "。 End of note."
    partial = "引用：" + poem[:49]  # 49 characters of the poem only
    m = scan([quoted, partial], index)
    assert m.doc.tolist() == [0] and m.hits.tolist() == [11]
    assert m.start.tolist() == [2] and window_text(quoted, "char", 2, 50) == poem[:50]  # after 李白


def test_sources_are_reported_together_when_an_ngram_is_in_several():
    index = build_index([("a:validation", [TEST]), ("b:test", [TEST]), ("c:test", ["other words " * 10])], SPEC)
    m = scan([TEST], index)
    assert index.sources_of(int(m.mask[0])) == ["a:validation", "b:test"]
    assert index.per_source == {"a:validation": 13, "b:test": 13, "c:test": 2}  # "other words" repeats: 2 distinct


def test_windows_never_cross_texts_and_hashes_are_positional():
    s = word_stream(["a b c", "d e", "a b c"])
    w = windows(s, [2, 3])
    assert sorted(zip(w.text.tolist(), w.start.tolist(), w.length.tolist())) == [
        (0, 0, 2), (0, 0, 3), (0, 1, 2), (1, 0, 2), (2, 0, 2), (2, 0, 3), (2, 1, 2)]
    by = {(t, st, k): h for t, st, k, h in zip(w.text.tolist(), w.start.tolist(), w.length.tolist(), w.hashes.tolist())}
    assert by[(0, 0, 3)] == by[(2, 0, 3)] and by[(0, 0, 2)] != by[(0, 1, 2)]
    assert len(set(windows(word_stream(["b a", "a b"]), [2]).hashes.tolist())) == 2  # order matters
    assert char_stream(["plain ascii"]).hashes.size == 0


def test_mark_is_deterministic_and_empty_inputs_are_fine():
    index = build_index([("news:test", [TEST])], SPEC)
    docs = [TEST, "", "x " * 500, TEST.upper()] * 40  # several scan batches
    a, b = mark(docs, index), mark(list(docs), index)
    assert a == b and sum(v is not None for v in a) == 80
    info = json.loads(a[3])
    assert info == {"matched": ["news:test"], "unit": "word", "n": 13, "windows": 13, "held_out_unit": None,
                    "ngram": " ".join(TEST.lower().replace(",", "").replace(".", "").split()[:13])}
    empty = build_index([], SPEC)
    assert len(empty.keys) == 0 and mark(docs[:4], empty) == [None] * 4 and mark([], index) == []
    assert np.all(np.diff(index.keys.astype(np.float64)) > 0)


def test_scan_batches_are_bounded_by_characters_and_do_not_change_the_marks(monkeypatch):
    from pipeline.decontaminate import shards
    assert shards.batches([5, 5, 5, 5, 5], 3, 100) == [(0, 3), (3, 5)]
    assert shards.batches([40, 40, 40, 200, 10], 10, 100) == [(0, 2), (2, 3), (3, 4), (4, 5)]
    assert shards.batches([], 3, 100) == [] and shards.batches([500], 3, 100) == [(0, 1)]
    index = build_index([("news:test", [TEST])], SPEC)
    docs = [f"{'filler words here ' * k}{TEST}" if k % 3 else "x " * k for k in range(60)]
    whole = mark(docs, index)
    monkeypatch.setattr(shards, "_BATCH_CHARS", 300)  # many batches, a document alone in several
    assert mark(docs, index) == whole and sum(v is not None for v in whole) == 40


def test_a_copy_in_full_width_latin_or_with_ligatures_matches():
    index = build_index([("news:test", [TEST])], SPEC)
    full_width = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in TEST)
    ligatures = TEST.replace("st", "\ufb06")
    assert ligatures != TEST and full_width != TEST
    m = scan([f"Copied: {full_width}", f"Copied: {ligatures}"], index)
    assert m.doc.tolist() == [0, 1] and m.hits.tolist() == [13, 13]


def test_held_out_units_come_only_from_stdlib_documents():
    from pipeline.tasks.heldout import doc_unit
    from pipeline.ingest.stdlib import meta_json
    assert doc_unit(meta_json({"kind": "module", "module": "json", "area": "json"})) == "module/json"
    assert doc_unit(meta_json({"kind": "topic", "topic": "if"})) == "topic/if"
    assert doc_unit(meta_json({"kind": "source", "module": "json", "area": "json"})) == "module/json"
    assert doc_unit(meta_json({"file": "u.jsonl", "line": 1, "kind": "module", "module": "json"})) is None
    assert doc_unit(meta_json({"module": "json"})) is None


def test_a_user_jsonl_field_module_does_not_make_a_held_out_document(tmp_path):
    from pipeline.ingest.readers import read_jsonl
    from pipeline.ingest.config import SourceConfig
    from pipeline.ingest.stdlib import meta_json
    p = tmp_path / "u.jsonl"
    p.write_text(json.dumps({"text": "my notes on parsing config files", "kind": "module", "module": "json"}) + "\n")
    [doc] = read_jsonl(p, "u.jsonl", SourceConfig(name="u", kind="jsonl", paths=["u.jsonl"]))
    index = build_index([("area:test", ["unrelated evaluation text"])], SPEC, {"module/json": ["area:test"]})
    stdlib_doc = meta_json({"kind": "module", "module": "json", "area": "json"})
    marks = mark([doc.text, "the json page"], index, [meta_json(doc.meta), stdlib_doc])
    assert marks[0] is None and json.loads(marks[1])["held_out_unit"] == "module/json"
