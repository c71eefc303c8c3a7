"""bench/pretrained.py's CoNLL-2003 pretraining text: the words of the first column, tags dropped, sentences
one per line, grouped into documents of consecutive sentences."""
from __future__ import annotations

import argparse

import bench.pretrained as bp


def test_conll_documents_keep_words_drop_tags_and_docstart(tmp_path, monkeypatch):
    (tmp_path / "conll2003").mkdir()
    sentences = [[("EU", "NNP", "B-ORG"), ("rejects", "VBZ", "O"), ("lamb", "NN", "O"), (".", ".", "O")],
                 [("Peter", "NNP", "B-PER"), ("Blackburn", "NNP", "I-PER")]] * 200
    blocks = ["-DOCSTART- -X- -X- O"] + ["\n".join(" ".join(t) for t in s) for s in sentences]
    (tmp_path / "conll2003" / "train.txt").write_text("\n\n".join(blocks) + "\n")
    monkeypatch.setattr(bp, "DATASETS", tmp_path)
    docs = bp.conll_documents()
    lines = [line for d in docs for line in d.split("\n")]
    assert docs and all(len(d.encode()) + 1 >= 2500 for d in docs)  # bench.corpora.pieces counts each newline
    assert lines[:2] == ["EU rejects lamb .", "Peter Blackburn"]  # -DOCSTART- gone, one sentence a line
    assert not any(tag in d for d in docs for tag in ("NNP", "B-ORG", "I-PER", "DOCSTART"))
    # consecutive sentences in order; only a tail shorter than one document is left out
    assert lines == [" ".join(w for w, _, _ in s) for s in sentences][:len(lines)]
    assert len(sentences) - len(lines) < 2500 // len("Peter Blackburn")


def test_corpus_style_cased_conll_adds_conll_to_the_cased_corpus(monkeypatch):
    monkeypatch.setattr(bp, "DATASETS", None)  # nothing read from disk: both sources stubbed below
    calls = []
    monkeypatch.setattr(bp, "conll_documents", lambda: calls.append(1) or ["conll doc"])
    base = ["story", "wiki", "play"]
    monkeypatch.setattr(bp, "_base_documents", lambda shakespeare=True: list(base) if shakespeare else base[:2])
    assert bp.corpus_documents("cased") == base and not calls
    assert bp.corpus_documents("cased-conll") == base + ["conll doc"]
    assert bp.corpus_documents("modern") == ["story", "wiki"]
    assert {"cased-conll", "modern"} <= set(bp.CORPUS_STYLES)


def test_corpus_style_modern_leaves_tiny_shakespeare_out(tmp_path, monkeypatch):
    for folder, name, text in (("tinystories_slice", "tinystories_val_head.txt", "Spot ran.\n\nKitty sat.\n"),
                               ("wikitext2_tokenized", "valid.txt", " = A = \n a film .\n = B = \n a song .\n"),
                               ("wikitext2_tokenized", "test.txt", " = C = \n a book .\n"),
                               ("tinyshakespeare", "input.txt", "First Citizen:\nHear me speak.\n")):
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / name).write_text(text)
    monkeypatch.setattr(bp, "DATASETS", tmp_path)
    cased, modern = bp.corpus_documents("cased"), bp.corpus_documents("modern")
    assert cased[-1].startswith("First Citizen:\nHear me speak.")
    assert modern == cased[:-1] and len(modern) == 5  # 2 paragraphs, 3 articles
    assert not any("Citizen" in d for d in modern)


def test_recipe_options_keep_the_default_cache_keys():
    ap = argparse.ArgumentParser()
    bp.add_recipe_args(ap)
    medium = {**bp.PRETRAIN, "model": {**bp.PRETRAIN["model"], **bp.TRUNKS["medium"], "arch": "decoder"}}
    # the defaults, or the default vocabulary named explicitly, give the recipe (and cache key) as before
    for argv in (["--trunk", "medium"], ["--trunk", "medium", "--vocab", str(bp.PRETRAIN["vocab_size"])]):
        assert bp.recipe_from_args(bp.PRETRAIN, ap.parse_args(argv)) == medium
    got = bp.recipe_from_args(bp.PRETRAIN, ap.parse_args(["--trunk", "medium", "--vocab", "8192",
                                                          "--pretrain-seed", "3"]))
    assert got == {**medium, "vocab_size": 8192, "seed": 3}
    assert bp.pretrain_config(got, 1).seed == 3  # the seed reaches the trainer
    assert bp.pretrain_config(medium, 1).seed == bp.PretrainConfig().seed


def test_whole_sentences_are_the_rows_no_other_row_contains():
    from bench.sst2 import whole_sentences
    texts = ["a good movie , really", "good movie", "a good movie", "the bad one here", "bad one", "x y",
             "movie , really good", "good"]
    # 1 and 2 are inside 0, 4 inside 3; 5 and 7 have under 3 words; "movie , really" is a prefix of 6
    # but 6 is inside no row ("really good" does not follow in 0)
    assert whole_sentences(texts) == [0, 3, 6]
