"""The tokenize stage end to end: layout, exact contents, figures, edge corpora, resume, workers, reuse."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from pipeline.configtypes import ConfigError, build
from pipeline.stage import InjectedFailure
from pipeline.tokenize import TokenizeConfig, TokenizeError, Tokenizer
from pipeline.tokenize.shards import list_shards, open_shard, read_meta
from pipeline.tokenize.train import TokenizerTrainingError, train_model, trainer_options


def docs_by_split(out):
    """{split: [(doc_id, token ids), ...]} read back from the shards."""
    result = {}
    for split in ("train", "val"):
        rows = []
        for path in list_shards(out, split) if (out / split).exists() else []:
            sh = open_shard(path)
            ids = sh.batch.column("doc_id").to_pylist()
            rows += [(ids[i], sh.tokens[sh.offsets[i]:sh.offsets[i + 1]], int(sh.n_bytes[i]))
                     for i in range(sh.n_docs)]
        result[split] = rows
    return result


def test_meta_describes_the_output(built, tok):
    out, stats, texts = built
    meta = read_meta(out)
    model = (out / "tokenizer" / "tokenizer.model").read_bytes()
    assert meta["tokenizer"]["digest"] == hashlib.blake2b(model, digest_size=16).hexdigest() == tok.digest
    assert meta["dtype"] == "uint16" and meta["vocab_size"] == tok.vocab_size == stats["vocab_size"]
    assert meta["special_ids"] == {"pad": 0, "unk": 1, "bos": 2, "eos": 3, "mask": 4, "sep": 5, "cls": 6}
    assert meta["sentinel_ids"] == list(range(7, 15))
    opts = meta["tokenizer"]["options"]
    assert opts["byte_fallback"] and opts["split_digits"] and opts["normalization_rule_name"] == "identity"
    assert opts["user_defined_symbols"][:4] == ["<mask>", "<sep>", "<cls>", "<extra_id_0>"]
    assert meta["source"] == {"stage": "dedup", "key": "upstream"}
    assert meta["splits"]["train"]["documents"] + meta["splits"]["val"]["documents"] == len(texts)
    vocab_lines = (out / "tokenizer" / "tokenizer.vocab").read_text().splitlines()
    assert len(vocab_lines) == tok.vocab_size and vocab_lines[4].startswith("<mask>\t")
    assert np.array_equal(np.load(out / "tokenizer" / "token_bytes.npy"), tok.token_bytes())


def test_shards_hold_every_document_exactly_once(built, tok):
    out, stats, texts = built
    by_id = {f"t:{i}": t for i, t in enumerate(texts)}
    got = docs_by_split(out)
    seen = [d for rows in got.values() for d, _, _ in rows]
    assert sorted(seen) == sorted(by_id) and len(got["val"]) > 0
    for rows in got.values():
        order = [int(d.split(":")[1]) for d, _, _ in rows]
        assert order == sorted(order)  # input order within a split
        for doc_id, ids, n_bytes in rows:
            assert ids[-1] == tok.eos_id and tok.eos_id not in ids[:-1].tolist()
            assert tok.decode(ids[:-1].tolist()) == by_id[doc_id]
            assert n_bytes == len(by_id[doc_id].encode("utf-8"))
    for split in ("train", "val"):
        for path in list_shards(out, split):
            sh = open_shard(path)
            assert len(sh.tokens) <= 700 or sh.n_docs == 1, (path, len(sh.tokens))
    assert stats["tokens_train"] == sum(len(ids) for _, ids, _ in got["train"])
    assert stats["shards_train"] == len(list_shards(out, "train")) >= 3


def test_figures_and_reports(built):
    out, stats, texts = built
    report = json.loads((out / "reports" / "tokenize_stats.json").read_text())
    tr = report["splits"]["train"]
    assert tr["bytes_per_token"] == pytest.approx(tr["bytes"] / (tr["tokens"] - tr["documents"]))
    assert stats["unk_tokens"] == 0 and 0 < stats["vocab_coverage"] <= 1
    assert set(stats["byte_fallback_share"]) == {"latin", "cjk", "cyrillic", "other"}
    assert report["docs_by_script"]["cjk"] == 40 and report["docs_by_script"]["cyrillic"] == 40
    hist = report["tokens_per_doc"]
    assert sum(sum(c) for c in hist["counts"].values()) == len(texts)
    assert (out / "reports" / "tokens_per_doc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    samples = json.loads((out / "reports" / "samples.json").read_text())
    assert samples["train"][0]["doc_id"] == "t:0" and samples["train"][0]["pieces"]


def test_empty_corpus_names_the_upstream_stage(tmp_path, manifest_of, h):
    with pytest.raises(TokenizeError, match="no documents to tokenize: upstream stage 'dedup'"):
        h.run_stage(tmp_path / "out", manifest_of([]))


def test_one_document_corpus_is_refused_with_the_fix(tmp_path, manifest_of, h):
    """One book as one text file was one document: validation came out empty and pretraining failed with a
    KeyError at its first evaluation. Now the tokenize stage says why and what to change."""
    from pipeline.tokenize.stage import TokenizeError
    with pytest.raises(TokenizeError, match=r"the validation split is empty: a single document: it is train, val is "
                                            r"empty \(of 1 document\(s\) kept upstream\).*split: paragraph"):
        h.run_stage(tmp_path / "out", manifest_of(["Just one small document, 12 words long or so."]))


def test_a_tiny_corpus_gets_a_smaller_vocabulary_and_says_so(tmp_path, manifest_of, h, capsys):
    stats = h.run_stage(tmp_path / "out", manifest_of(["Just one small document, 12 words long or so.",
                                                       "And a second one, a little shorter."]))
    assert stats["docs_train"] == 1 and stats["docs_val"] == 1
    assert stats["vocab_size"] < 600  # soft vocabulary limit
    assert (f"the corpus holds {stats['vocab_size']:,} pieces, fewer than tokenize.vocab_size=600: the vocabulary is "
            f"{stats['vocab_size']:,}") in capsys.readouterr().err


def test_split_keeps_clusters_together_in_the_shards(tmp_path, manifest_of, h):
    texts = h.make_texts(120)
    clusters = [i // 3 for i in range(120)]
    h.run_stage(tmp_path / "out", manifest_of(texts, cluster_ids=clusters), val_fraction=0.3)
    side = {}
    for split, rows in docs_by_split(tmp_path / "out").items():
        for doc_id, _, _ in rows:
            side.setdefault(clusters[int(doc_id.split(":")[1])], set()).add(split)
    assert len(side) == 40 and all(len(s) == 1 for s in side.values())
    assert read_meta(tmp_path / "out")["split"]["key"] == "cluster_id"


@pytest.mark.parametrize("fail_after", [1, 2, 6])
def test_resume_after_injected_failure_is_byte_identical(tmp_path, built, corpus, manifest_of, h, fail_after):
    manifest = manifest_of(corpus)
    with pytest.raises(InjectedFailure):
        h.run_stage(tmp_path / "out", manifest, fail_after=fail_after)
    stats = h.run_stage(tmp_path / "out", manifest)
    assert h.files_of(tmp_path / "out") == h.files_of(built[0])
    if fail_after == 6:  # tokenizer (4 files) + 2 shards survived: those were not encoded again
        assert stats["encoded_tokens"] < built[1]["tokens_train"] + built[1]["tokens_val"]


def test_workers_do_not_change_the_output(tmp_path, built, corpus, manifest_of, h):
    h.run_stage(tmp_path / "out", manifest_of(corpus, docs_per_shard=13), workers=2)
    assert h.files_of(tmp_path / "out") == h.files_of(built[0])


def test_reused_tokenizer_is_copied_not_retrained(tmp_path, built, corpus, manifest_of, h, capsys):
    stats = h.run_stage(tmp_path / "out", manifest_of(corpus), tokenizer_path=str(built[0]))
    assert "not used" not in capsys.readouterr().err  # the same vocab_size as the reused model: nothing to say
    out = tmp_path / "out"
    model = "tokenizer/tokenizer.model"
    assert (out / model).read_bytes() == (built[0] / model).read_bytes()
    meta = read_meta(out)
    assert meta["tokenizer"]["trained"] is False and meta["tokenizer"]["source"].endswith("tokenizer.model")
    assert meta["tokenizer"]["options"] == read_meta(built[0])["tokenizer"]["options"]
    assert stats["tokens_train"] == built[1]["tokens_train"]
    for split in ("train", "val"):
        ours, theirs = list_shards(out, split), list_shards(built[0], split)
        assert [p.read_bytes() for p in ours] == [p.read_bytes() for p in theirs]
    with pytest.raises(ConfigError, match="tokenize.tokenizer_path: no tokenizer model"):
        h.run_stage(tmp_path / "out2", manifest_of(corpus), tokenizer_path=str(tmp_path / "nowhere"))
    size = read_meta(built[0])["vocab_size"]
    h.run_stage(tmp_path / "out3", manifest_of(corpus), tokenizer_path=str(built[0]), vocab_size=size * 2)
    assert f"({size:,} pieces): tokenize.vocab_size={size * 2} and the other" in capsys.readouterr().err
    assert (tmp_path / "out3" / model).read_bytes() == (built[0] / model).read_bytes()


def test_cjk_heavy_corpus_gets_partial_coverage_and_no_unk(tmp_path, manifest_of, h):
    rng = np.random.default_rng(0)
    chars = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]  # more distinct characters than pieces
    texts = ["".join(rng.choice(chars, size=60)) for _ in range(150)] + h.make_texts(10)
    stats = h.run_stage(tmp_path / "out", manifest_of(texts))
    assert stats["character_coverage"] == 0.9995 and stats["unk_tokens"] == 0
    assert stats["byte_fallback_share"]["cjk"] > 0.5  # most of 3000 rare characters fall back to bytes
    training = json.loads((tmp_path / "out" / "tokenizer" / "training.json").read_text())
    assert training["coverage"]["script_shares"]["cjk"] > 0.9


def test_impossible_explicit_coverage_is_a_clear_error(tmp_path, manifest_of, h):
    chars = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]
    texts = ["".join(chars[i::50]) for i in range(50)]  # 3000 characters, each once
    with pytest.raises(TokenizerTrainingError, match=r"could not train a bpe model \(vocab_size 600, "
                                                     r"character_coverage 0.9995\).*smaller than required_chars"):
        h.run_stage(tmp_path / "out", manifest_of(texts), character_coverage=0.9995)


def test_unigram_training_is_deterministic_and_chunking_keeps_its_ids(corpus):
    cfg = build(TokenizeConfig, {"model_type": "unigram", "vocab_size": 800, "sentinels": 4})
    lines = [line for t in corpus for line in t.split("\n") if line]
    options = trainer_options(cfg, 1.0)
    model = train_model(lines, options, seed=0)
    assert model == train_model(lines, options, seed=0)
    tok = Tokenizer(model)
    assert tok.model_type == "unigram" and tok.chunk_chars is None  # chunking only pays for BPE
    whole = [tok.encode(t) for t in corpus]
    tok.chunk_chars = 3
    assert [tok.encode(t) for t in corpus] == whole


def test_config_rejects_a_vocab_without_room_for_bytes_and_specials():
    with pytest.raises(ConfigError, match=r"tokenize.vocab_size: got 350, allowed: >= 364"):
        build(TokenizeConfig, {"vocab_size": 350, "sentinels": 100})
    with pytest.raises(ConfigError, match=r"vocab_size: got 290, allowed: a number >= 300"):
        build(TokenizeConfig, {"vocab_size": 290})
