"""Span corruption (pipeline.loader.spans) and encoder-decoder pretraining, evaluation and blank filling."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import token_shards
from pipeline.loader import TokenShards
from pipeline.loader.spans import SpanBatches, collate, corrupt, lengths, raw_length, span_counts
from pretrain.test_trainer import cfg, losses
from pipeline.pretrain.trainer import train

S = [900, 901, 902, 903]  # sentinel ids
MANY = list(range(900, 940))
EOS = 3


class Cuts:
    """A stand-in generator: ``choice`` returns the cut points given, in order (noise first, then kept)."""

    def __init__(self, *cuts):
        self.cuts = list(cuts)

    def choice(self, n, k, replace):
        out = np.asarray(self.cuts.pop(0))
        assert len(out) == k and not replace and (out < n).all()
        return out


def test_counts_follow_t5():
    assert span_counts(20, 0.15, 3.0) == (3, 1)  # round(3.0) noise tokens, round(3 / 3) spans
    assert span_counts(100, 0.15, 3.0) == (15, 5)
    assert span_counts(2, 0.15, 3.0) == (1, 1)  # at least one of each
    assert lengths(100, 0.15, 3.0) == (100 - 15 + 5 + 1, 15 + 5 + 1)
    for block in (16, 32, 64, 128, 512):
        n = raw_length(block, 0.15, 3.0)
        assert max(lengths(n, 0.15, 3.0)) <= block < max(lengths(n + 1, 0.15, 3.0))


def test_a_hand_made_corruption():
    """The cat sat on the mat . -> noise 'cat' and 'mat .' (3 of 7 tokens, 2 spans)."""
    tokens = np.array([10, 11, 12, 13, 14, 15, 16])  # The cat sat on the mat .
    # noise: 3 tokens in 2 spans cut after the first (1 + 2); kept: 4 tokens cut after the first (1 + 3)
    src, tgt = corrupt(tokens, Cuts([0], [0]), 3 / 7, 1.5, S, EOS)
    # kept "The", noise "cat", kept "sat on the", noise "mat .": as T5 interleaves, a kept part first
    assert src.tolist() == [10, S[0], 12, 13, 14, S[1], EOS]
    assert tgt.tolist() == [S[0], 11, S[1], 15, 16, EOS]


@pytest.mark.parametrize("length", [2, 3, 7, 35, 71, 128])
def test_source_and_target_rebuild_the_window(length):
    rng = np.random.default_rng(length)
    for seed in range(20):
        tokens = rng.integers(4, 800, size=length)
        src, tgt = corrupt(tokens, np.random.default_rng(seed), 0.15, 3.0, MANY, EOS)
        noise, spans = span_counts(length, 0.15, 3.0)
        assert (len(src), len(tgt)) == lengths(length, 0.15, 3.0)
        sentinels = [t for t in src if t >= 900]
        assert sentinels == MANY[:spans] and tgt[0] == S[0] and tgt[-1] == EOS
        # each sentinel of the source stands for the tokens behind it in the target
        parts, cur = {}, None
        for t in tgt[:-1]:
            if t >= 900 and t not in parts:
                cur = parts.setdefault(int(t), [])
            else:
                cur.append(int(t))
        assert src[-1] == EOS
        rebuilt = [x for t in src[:-1] for x in (parts[int(t)] if t >= 900 else [int(t)])]
        assert rebuilt == tokens.tolist() and sum(map(len, parts.values())) == noise
        assert all(parts.values())  # no empty span
    a = corrupt(tokens, np.random.default_rng(1), 0.15, 3.0, MANY, EOS)
    b = corrupt(tokens, np.random.default_rng(1), 0.15, 3.0, MANY, EOS)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_too_few_sentinels_is_an_error_naming_the_setting():
    with pytest.raises(ValueError, match="tokenize.sentinels"):
        corrupt(np.arange(4, 104), np.random.default_rng(0), 0.15, 3.0, S, EOS)  # 5 spans, 4 sentinels


def test_collate_pads_and_shifts_the_target():
    b = collate([(np.array([5, 6, S[0]]), np.array([S[0], 7, EOS])),
                 (np.array([8, S[0]]), np.array([S[0], 9, 9, EOS]))], pad_id=0, start_id=2)
    assert b["src"].tolist() == [[5, 6, S[0]], [8, S[0], 0]] and b["src_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert b["tgt_in"].tolist() == [[2, S[0], 7, 0], [2, S[0], 9, 9]]
    assert b["targets"].tolist() == [[S[0], 7, EOS, -100], [S[0], 9, 9, EOS]]
    assert b["tgt_mask"].tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return token_shards(tmp_path_factory.mktemp("spans"))


def test_span_batches_are_a_pure_function_of_the_step(shards):
    batches = SpanBatches(TokenShards(shards, "train"), 32, 4, seed=7)
    (src, tgt_in), tgt = batches.get(3)
    assert src.shape == (4, lengths(batches.length, 0.15, 3.0)[0]) and tgt.shape == tgt_in.shape
    assert src.shape[1] <= 32 and tgt.shape[1] <= 32 and (tgt != -100).all()  # fixed lengths: no padding
    assert (tgt_in[:, 1:] == tgt[:, :-1]).all() and (tgt[:, -1] == batches.eos_id).all()
    again = SpanBatches(TokenShards(shards, "train"), 32, 4, seed=7).get(3)
    assert torch.equal(again[0][0], src) and torch.equal(again[1], tgt)
    assert not torch.equal(batches.get(4)[0][0], src)


def test_encoder_decoder_pretraining_learns_resumes_exactly_and_fills_blanks(shards, tmp_path):
    c = cfg(model={"arch": "encoder_decoder", "n_dec_layer": 1}, max_steps=24, lr=5e-3)
    stats = train(c, shards, tmp_path / "full")
    ls = losses(tmp_path / "full")
    assert sum(ls[-4:]) / 4 < sum(ls[:4]) / 4 - 0.5  # it learns
    assert 0.0 <= stats["kept_val_accuracy"] <= 1.0 and "kept_val_bpb" not in stats
    from model.flops import seq2seq_flops
    from model.checkpoint import load_config
    window = raw_length(32, 0.15, 3.0)  # FLOPs per text token: each stack charged for its own tokens only
    assert stats["flops_per_token"] == seq2seq_flops(load_config(tmp_path / "full" / "model"),
                                                     *lengths(window, 0.15, 3.0)) / window
    assert stats["tokens"] == 24 * 4 * window
    meta = json.loads((tmp_path / "full" / "model" / "meta.json").read_text())
    assert meta["model_class"] == "Seq2SeqLM" and meta["objective"] == "span"
    assert train(c, shards, tmp_path / "resumed", stop_after=10) == {"stopped_at": 10}
    train(c, shards, tmp_path / "resumed")
    assert losses(tmp_path / "resumed") == ls  # bit-identical at every step
    # the evaluate stage's scorer gives back what pretraining recorded for the kept checkpoint
    from model.checkpoint import load_model
    from pipeline.evaluate import lm
    from pipeline.pretrain.runtime import Runtime
    model, mcfg = load_model(tmp_path / "full" / "model")
    assert mcfg.dec_layers == 1 and len(model.decoder.blocks) == 1
    budget = None if meta["step"] == 24 else 2
    again = lm.score_lm(model, TokenShards(shards, "val"), Runtime(torch.device("cpu"), "fp32"), 32, 4, budget,
                        mask_rate=0.15)
    assert again["loss"] == pytest.approx(meta["val_loss"], rel=1e-5)
    assert again["accuracy"] == pytest.approx(meta["val_accuracy"], abs=1e-9)
    assert again["encoder_gain"] == pytest.approx(meta["val_encoder_gain"], abs=1e-6)
    # every window: the pairs (2k, 2k + 1) are the same whatever the (even) batch size
    by2, by6 = (lm.score_lm(model, TokenShards(shards, "val"), Runtime(torch.device("cpu"), "fp32"), 32, size, None,
                            mask_rate=0.15) for size in (2, 6))
    assert by2["encoder_gain"] == pytest.approx(by6["encoder_gain"], abs=1e-6) and by2["encoder_gain"] != 0
    # a decoder that cannot read its encoder (cross-attention's output zeroed) gains nothing from its own source
    with torch.no_grad():
        for block in model.decoder.blocks:
            block.cross.proj.weight.zero_()
    blind = lm.score_lm(model, TokenShards(shards, "val"), Runtime(torch.device("cpu"), "fp32"), 32, 4, budget,
                        mask_rate=0.15)
    assert blind["encoder_gain"] == pytest.approx(0.0, abs=1e-6) and again["encoder_gain"] != pytest.approx(0.0)
    from pipeline.inference import fill_mask
    filled = fill_mask(tmp_path / "full" / "model", "the [MASK] was [MASK] .")
    assert len(filled) == 2 and len(filled[0]) == 1 and isinstance(filled[0][0][0], str) and 0 < filled[0][0][1] <= 1
    assert len(filled[1]) <= 1  # [] when the decoder ended before the second sentinel


def test_fill_spans_reads_each_span_behind_its_sentinel(shards):
    """A scripted decoder: only the next sentinel may come (a used or a later one never), the pieces between
    them are the spans, EOS ends; a span's probability is the product of its pieces' among what could come."""
    from pipeline.inference import fill_spans
    from pipeline.tokenize.tokenizer import Tokenizer
    tok = Tokenizer.from_dir(shards)
    s0, s1, s2 = tok.sentinel_ids[:3]
    cat, dog = tok.encode(" cat")[-1], tok.encode(" dog")[-1]
    # after [start, s0]: cat (s0 scores higher: used), dog (s2 higher: not next), s1, cat, EOS (s0 higher)
    script = [(cat, s0), (dog, s2), (s1, None), (cat, None), (tok.eos_id, s0)]
    seen = []

    class Scripted(torch.nn.Module):
        encoder = decoder = type("T", (), {"block_size": 64})()

        def forward(self, src, tgt_in):
            seen.append(src[0].tolist())
            want, above = script[tgt_in.shape[1] - 2]
            logits = torch.zeros(1, tgt_in.shape[1], tok.vocab_size)
            logits[0, -1, want] = 2.0
            if above is not None:
                logits[0, -1, above] = 5.0
            return logits, None

    filled = fill_spans(Scripted(), tok, ["the", "and the", "."])
    assert seen[0] == tok.encode("the") + [s0] + tok.encode("and the") + [s1] + tok.encode(".") + [tok.eos_id]
    assert [f[0][0] for f in filled] == [tok.decode([cat, dog]), tok.decode([cat])]
    allowed = tok.vocab_size - len(set(tok.all_special_ids) - {tok.eos_id})  # the last span: no sentinel to come
    p = np.exp(2.0) / (np.exp(2.0) + allowed - 1)
    assert filled[1][0][1] == pytest.approx(p * p, rel=1e-4)  # "cat", then its end (EOS), each with share p
    script[:] = [(cat, None), (tok.eos_id, None)]  # EOS before the second sentinel: no span for that mask
    q = np.exp(2.0) / (np.exp(2.0) + allowed)  # the second sentinel could come too
    assert fill_spans(Scripted(), tok, ["the", "and the", "."]) == [[(tok.decode([cat]), pytest.approx(q * q))], []]
    script[:] = [(tok.eos_id, None)]  # an empty span is as likely as its end, not certain
    alone = np.exp(2.0) / (np.exp(2.0) + allowed - 1)
    assert fill_spans(Scripted(), tok, ["the", "."]) == [[("", pytest.approx(alone))]]
    with pytest.raises(ValueError, match="the model reads at most 64"):
        fill_spans(Scripted(), tok, ["word " * 70, ""])


@pytest.mark.parametrize("sets, match", [
    (["tokenize.sentinels=2"], r"^tokenize.sentinels: got 2, allowed: at least 3 for span corruption of 70-token"),
    (["evaluate.mask_rate=0.6"], r"^evaluate.mask_rate: got 0.6 \(mean_span 3.0\), which needs 16 sentinels for "
                                 r"79-token windows; tokenize.sentinels is 8: lower"),
    (["pretrain.mean_span=1"], r"^tokenize.sentinels: got 8, allowed: at least 9 for span corruption of 63-token"),
    (["pretrain.mask_rate=0.8"], r"^pretrain.mask_rate: got 0.8, allowed: at most 0.75 with pretrain.mean_span 3.0"),
    (["evaluate.mask_rate=0.9", "evaluate.mean_span=2"], r"^evaluate.mask_rate: got 0.9, allowed: at most 0.6667"),
    (["tokenize.tokenizer_path=tok0"], r"^tokenize.tokenizer_path: \S+tokenizer.model has 0 sentinel\(s\); span "
                                       r"corruption of 70-token windows .* needs 3: use a tokenizer with more"),
])
def test_too_few_sentinels_fail_at_planning_naming_the_key(tmp_path, sets, match):
    """A reused tokenizer once passed planning and failed when pretraining started, advising a setting that
    does nothing for a reused tokenizer."""
    from pipeline import config
    from pipeline.configtypes import ConfigError
    from pipeline.plan import make_plan
    from finetune.tiny_pretrained import tokenizer_bytes
    (tmp_path / "tok0").mkdir()
    (tmp_path / "tok0" / "tokenizer.model").write_bytes(tokenizer_bytes())  # trained without sentinels
    with pytest.raises(ConfigError, match=match):
        make_plan(config.load("tiny", overrides=["pretrain.model.arch=encoder_decoder", *sets]), tmp_path / "work",
                  tmp_path)
    make_plan(config.load("tiny", overrides=["pretrain.model.arch=encoder_decoder"]), tmp_path / "work", tmp_path)


def test_a_batch_counts_the_window_a_row_reads_and_n_dec_layer_equal_to_n_layer_is_the_default():
    from pipeline.pretrain import key_config
    from pipeline.pretrain.trainer import grad_accum_steps, window_tokens
    c = cfg(model={"arch": "encoder_decoder"}, global_batch_tokens=4 * raw_length(32, 0.15, 3.0) * 3)
    assert window_tokens(c) == raw_length(32, 0.15, 3.0) and grad_accum_steps(c, world=1) == 3  # per block, once: 4
    same = cfg(model={"arch": "encoder_decoder", "n_dec_layer": 2})  # TINY_MODEL's n_layer
    assert same.model.n_dec_layer is None and key_config(same) == key_config(cfg(model={"arch": "encoder_decoder"}))
    assert cfg(model={"arch": "encoder_decoder", "n_dec_layer": 1}).model.n_dec_layer == 1


def test_a_causal_lms_key_leaves_out_what_it_never_reads():
    """``pretrain.mask_rate`` on a decoder gave a new key: a tester retrained a byte-identical model, and
    everything after it. The masked LM and span corruption read it; the default's key stays as it was."""
    import dataclasses

    from pipeline.pretrain import MASK_RATE_DEFAULT, key_config
    from pipeline.pretrain.config import PretrainConfig
    assert {f.name: f.default for f in dataclasses.fields(PretrainConfig)}["mask_rate"] == MASK_RATE_DEFAULT
    assert key_config(cfg(mask_rate=0.3)) == key_config(cfg()) and key_config(cfg())["mask_rate"] == 0.15
    assert key_config(cfg(mask_rate=0.3, mean_span=5.0)) == key_config(cfg())
    for arch in ("encoder", "encoder_decoder"):
        assert key_config(cfg(model={"arch": arch}, mask_rate=0.3)) != key_config(cfg(model={"arch": arch}))
