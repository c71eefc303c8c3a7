"""ModelConfig: validation names the field, the value and what is allowed; JSON round trip."""
from __future__ import annotations

import pytest

from model import ModelConfig


@pytest.mark.parametrize(
    ("changes", "needles"),
    [
        ({"arch": "rnn"}, ["ModelConfig.arch", "'rnn'", "encoder_decoder"]),
        ({"norm": "batchnorm"}, ["ModelConfig.norm", "'batchnorm'", "rmsnorm"]),
        ({"mlp": "tanh"}, ["ModelConfig.mlp", "'tanh'", "swiglu", "relu2"]),
        ({"pos": "alibi"}, ["ModelConfig.pos", "'alibi'", "rotary"]),
        ({"n_embd": 130, "n_head": 4}, ["ModelConfig.n_embd=130", "n_head=4"]),
        ({"n_layer": 0}, ["ModelConfig.n_layer=0", ">= 1"]),
        ({"vocab_size": 12.5}, ["ModelConfig.vocab_size=12.5"]),
        ({"bias": 1}, ["ModelConfig.bias=1", "bool"]),
        ({"dropout": 1.0}, ["ModelConfig.dropout=1.0", "[0, 1)"]),
        ({"mlp_ratio": 0}, ["ModelConfig.mlp_ratio=0"]),
        ({"n_dec_layer": 2}, ["ModelConfig.n_dec_layer=2", "encoder_decoder"]),
        ({"pos": "rotary", "n_embd": 12, "n_head": 4}, ["rotary", "head_dim", "3"]),
    ],
)
def test_validation_error_names_field_value_and_allowed(changes, needles):
    with pytest.raises(ValueError) as err:
        ModelConfig(**changes)
    for needle in needles:
        assert needle in str(err.value)


def test_padded_vocab_and_sizes():
    assert ModelConfig(vocab_size=50257).padded_vocab == 50304
    assert ModelConfig(vocab_size=256).padded_vocab == 256
    assert ModelConfig(vocab_size=1).padded_vocab == 64
    assert ModelConfig(n_embd=768, n_head=12).head_dim == 64
    assert ModelConfig(n_embd=768, n_head=12, mlp="gelu").mlp_hidden == 3072
    assert ModelConfig(n_embd=768, n_head=12, mlp="swiglu").mlp_hidden == 2048
    assert ModelConfig(n_embd=8, n_head=2, mlp="swiglu").mlp_hidden == 24  # 21.3 -> multiple of 8
    assert ModelConfig(arch="encoder_decoder", n_layer=3).dec_layers == 3
    assert ModelConfig(arch="encoder_decoder", n_layer=3, n_dec_layer=5).dec_layers == 5


def test_dict_round_trip_and_unknown_keys():
    cfg = ModelConfig.modern(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=100)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    data = cfg.to_dict() | {"n_kv_head": 2, "alibi": True}
    with pytest.raises(ValueError, match=r"unknown ModelConfig keys \['alibi', 'n_kv_head'\]"):
        ModelConfig.from_dict(data)


def test_nanogpt_recipe_and_presets():
    cfg = ModelConfig.nanogpt(n_layer=6, n_head=6, n_embd=384, block_size=256, vocab_size=65)
    assert (cfg.arch, cfg.norm, cfg.mlp, cfg.pos) == ("decoder", "layernorm", "gelu", "learned")
    assert (cfg.bias, cfg.dropout, cfg.tie_embeddings, cfg.qk_norm, cfg.mlp_ratio) == (False, 0.0, True, False, 4.0)
    assert ModelConfig.from_name("gpt2_small").n_embd == 768
    assert ModelConfig.from_name("tiny", block_size=32).block_size == 32
    with pytest.raises(ValueError, match="unknown model preset 'huge'"):
        ModelConfig.from_name("huge")
    with pytest.raises(Exception):
        cfg.n_layer = 3  # frozen
