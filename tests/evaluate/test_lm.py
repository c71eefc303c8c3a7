"""Language-model figures on hand-computable cases: uniform predictions and a unigram model."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from pipeline.configtypes import ConfigError
from pipeline.evaluate import lm, unigram
from pipeline.loader import TokenShards
from pipeline.pretrain.runtime import Runtime
from pipeline.tokenize.tokenizer import Tokenizer

CPU = Runtime(torch.device("cpu"), "fp32")


class Uniform(nn.Module):
    """Logits 0 everywhere: every token gets probability 1/V."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab

    def forward(self, idx, labels=None, attention_mask=None):
        if labels is not None:  # the masked-LM contract: logits of the labelled positions only
            return torch.zeros(int((labels != -100).sum()), self.vocab), None
        return torch.zeros(*idx.shape, self.vocab), None


def test_uniform_model_bits_per_byte_is_tokens_ln_v_over_bytes(tokens):
    val = TokenShards(tokens.path, "val")
    V = val.vocab_size
    out = lm.score_lm(Uniform(V), val, CPU, block_size=32, batch_size=4, max_batches=None)
    first = int(val.window(0, 1)[0])
    assert out["tokens"] == val.n_tokens - 1  # every token but the first is predicted once
    assert out["bytes"] == val.n_bytes - int(val.token_bytes[first])
    assert out["loss"] == pytest.approx(math.log(V), rel=1e-6)
    assert out["ppl"] == pytest.approx(V, rel=1e-5)
    assert out["bpb"] == pytest.approx(out["tokens"] * math.log(V) / math.log(2) / out["bytes"], rel=1e-6)


def test_max_batches_scores_the_leading_windows_only(tokens):
    val = TokenShards(tokens.path, "val")
    assert lm.n_batches(None, 32, 4) is None and lm.n_batches(129, 32, 4) == 2 and lm.n_batches(1, 32, 4) == 1
    out = lm.score_lm(Uniform(val.vocab_size), val, CPU, 32, 2, lm.n_batches(64, 32, 2))
    assert out["tokens"] == 64
    assert out["bytes"] == int(val.token_bytes[val.window(1, 64).astype(np.int64)].sum())


def test_extra_text_is_scored_in_full_against_its_utf8_bytes(tokens, tmp_path):
    tok = Tokenizer.from_dir(tokens.path / "tokenizer")
    text = "The cat sat on the mat.\nCafé naïve — 東京の夜。\n" * 20
    path = tmp_path / "extra.txt"
    path.write_text(text, encoding="utf-8")
    out = lm.score_text(Uniform(tok.vocab_size), path, tok, CPU, 32, 4, None)
    n = len(tok.encode(text))
    assert out["tokens"] == n and out["bytes"] == out["text_bytes"] == len(text.encode("utf-8"))
    assert out["bpb"] == pytest.approx(n * math.log(tok.vocab_size) / math.log(2) / len(text.encode()), rel=1e-6)


def test_an_extra_text_too_short_for_a_masked_lm_is_an_error_naming_it(tokens, tmp_path):
    """A masked LM scores a drawn share of the tokens: a text of one token drew none (the report had a NaN row)."""
    tok = Tokenizer.from_dir(tokens.path / "tokenizer")

    class MaskedLM(Uniform):
        pass
    path = tmp_path / "one.txt"
    path.write_text("x")
    with pytest.raises(ConfigError, match=r"^evaluate.extra_texts: '.*one.txt' is too short to score: the masked LM "
                       r"masks a share of 0.15 of its \d+ token\(s\) and drew none"):
        lm.score_text(MaskedLM(tok.vocab_size), path, tok, CPU, 32, 4, None, mask_rate=0.15)
    path.write_text("The cat sat on the mat. " * 20)
    assert lm.score_text(MaskedLM(tok.vocab_size), path, tok, CPU, 32, 4, None, mask_rate=0.15)["tokens"] > 0


def test_reports_are_strict_json(tmp_path):
    """NaN and infinities become null: Python's json writes a bare NaN that strict parsers reject."""
    import json
    from pipeline.stage import StageContext
    ctx = StageContext(name="evaluate", key="k", out=tmp_path, inputs={})
    path = ctx.write_report("r.json", {"rows": [{"loss": float("nan"), "bpb": 1.5}], "x": (float("-inf"), 2)})
    assert json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}")) == {
        "rows": [{"loss": None, "bpb": 1.5}], "x": [None, 2]}


def test_masked_scoring_masks_a_fixed_share_of_ordinary_tokens(tokens):
    val = TokenShards(tokens.path, "val")
    V = val.vocab_size
    special = np.zeros(V, bool)
    special[val.meta["all_special_ids"]] = True

    class MaskedLM(Uniform):  # evaluate_lm tells the objectives apart by the model class's name
        pass

    a = lm.score_lm(MaskedLM(V), val, CPU, 32, 4, None, mask_rate=0.15)
    b = lm.score_lm(MaskedLM(V), val, CPU, 32, 4, None, mask_rate=0.15)
    assert a == b  # fixed masking seed
    assert a["loss"] == pytest.approx(math.log(V), rel=1e-6)
    assert a["accuracy"] == 0.0  # ties pick id 0, the pad id, which is never a masked target
    ordinary = sum(int((~special[t.astype(np.int64)]).sum()) for t in val.tokens)
    assert 0.08 * ordinary < a["tokens"] < 0.22 * ordinary
    # masks drawn per window: another batch size (the pretrain stage's) masks the very same positions
    for size in (1, 3, 7):
        assert lm.score_lm(MaskedLM(V), val, CPU, 32, size, None, mask_rate=0.15)["tokens"] == a["tokens"]


def test_unigram_model_by_hand():
    counts = np.array([3, 1, 0])
    logp = unigram.log_probs(counts)  # add-one: 4/7, 2/7, 1/7
    assert np.allclose(np.exp(logp), [4 / 7, 2 / 7, 1 / 7])
    out = unigram.score(logp, np.array([0, 1, 2, 0]), token_bytes=np.array([1, 2, 0]))
    nll = -(2 * math.log(4 / 7) + math.log(2 / 7) + math.log(1 / 7))
    assert out["tokens"] == 4 and out["bytes"] == 4
    assert out["loss"] == pytest.approx(nll / 4) and out["bpb"] == pytest.approx(nll / math.log(2) / 4)


def test_unigram_counts_and_targets_come_from_the_shards(tokens):
    train, val = TokenShards(tokens.path, "train"), TokenShards(tokens.path, "val")
    counts = unigram.train_counts(train)
    assert counts.sum() == train.n_tokens
    assert counts[train.special_ids["eos"]] == train.n_docs  # one EOS per document
    assert unigram.targets(val).tolist() == val.window(1, val.n_tokens - 1).tolist()
    assert len(unigram.targets(val, 10)) == 10
