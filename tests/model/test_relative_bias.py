"""T5's relative position bias (``pos="relative"``): buckets against hand-computed values, a bias that depends
on the relative position alone, causality, KV-cached decoding, padding, one table per stack, and the configs."""
from __future__ import annotations

import pytest
import torch

from model import CausalLM, MaskedLM, ModelConfig, Seq2SeqLM
from model.attention import RelativeBias, relative_buckets


def buckets(rels: list[int], bidirectional: bool) -> list[int]:
    return relative_buckets(torch.tensor(rels), bidirectional, 32, 128).tolist()


def test_buckets_by_hand():
    # Bidirectional: 16 buckets a side, keys ahead of the query (rel > 0) in 16..31; exact below 8; beyond,
    # 8 + floor(log(d / 8) / log(128 / 8) * 8): d=8 -> 8, d=16 -> 8 + floor(0.25 * 8) = 10,
    # d=127 -> 8 + floor(7.977) = 15, d >= 128 -> 15 (the last bucket).
    assert buckets([0, -1, 1, -7, -8, -16, 16, -127, -128, -1000, 1000], True) == [
        0, 1, 17, 7, 8, 10, 26, 15, 15, 15, 31]
    # Causal: 32 buckets for the past, keys ahead get bucket 0 (they are masked anyway); exact below 16;
    # d=32 -> 16 + floor(log 2 / log 8 * 16) = 16 + 5 = 21; d=64 -> 16 + floor(2/3 * 16) = 26.
    assert buckets([0, 5, -1, -15, -16, -32, -64, -127, -200], False) == [0, 0, 1, 15, 16, 21, 26, 31, 31]


def test_bias_depends_on_the_relative_position_only():
    rb = RelativeBias(n_head=3, bidirectional=True)
    torch.nn.init.normal_(rb.bias.weight)
    full = rb(0, 9, 9)  # (1, H, 9, 9)
    assert full.shape == (1, 3, 9, 9)
    for shift in range(1, 4):  # the same relative offsets, the same bias
        assert torch.equal(full[0, :, shift:, shift:], full[0, :, :-shift, :-shift])
    assert torch.equal(rb(4, 2, 9), full[:, :, 4:6])  # queries from position 4 (a KV-cached step)
    assert not torch.equal(full[0, 0, 0, 1], full[0, 0, 1, 0])  # ahead and behind differ


def relative(arch: str, **kw) -> ModelConfig:
    base = dict(arch=arch, n_layer=2, n_head=2, n_embd=16, block_size=12, vocab_size=50, pos="relative",
                norm="rmsnorm")
    return ModelConfig(**(base | kw))


def strong_bias(model: torch.nn.Module) -> None:
    """Random init leaves the bias near 0; make it matter."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "rel_bias" in name:
                p.normal_(0.0, 2.0)


def test_causal_model_with_relative_bias():
    torch.manual_seed(0)
    model = CausalLM(relative("decoder")).eval()
    strong_bias(model)
    assert model.transformer.wpe is None and model.transformer.rotary is None
    idx = torch.randint(0, 50, (2, 10))
    a, _ = model(idx)
    changed = idx.clone()
    changed[:, 6:] = (changed[:, 6:] + 3) % 50
    b, _ = model(changed)
    assert torch.allclose(a[:, :6], b[:, :6], atol=1e-5) and not torch.allclose(a[:, 6:], b[:, 6:], atol=1e-3)
    # the padding-mask path, the fast path and a KV-cached prefill + steps agree
    masked, _ = model(idx, attention_mask=torch.ones(2, 10, dtype=torch.long))
    assert torch.allclose(a, masked, atol=1e-5)
    cache = model.transformer.new_cache()
    steps = [model.transformer.forward_hidden(idx[:, :4], cache=cache)]
    steps += [model.transformer.forward_hidden(idx[:, i:i + 1], cache=cache) for i in range(4, 10)]
    assert torch.allclose(torch.cat(steps, dim=1), model.transformer.forward_hidden(idx), atol=1e-5)
    # the bias is what tells positions apart: with it zeroed, a repeated token reads the same at every position
    with torch.no_grad():
        model.transformer.rel_bias.bias.weight.zero_()
    same, _ = model(torch.full((1, 6), 7))
    assert torch.allclose(same[0, 0], same[0, -1], atol=1e-5)


def test_encoder_and_seq2seq_with_relative_bias():
    torch.manual_seed(0)
    enc = MaskedLM(relative("encoder")).eval()
    strong_bias(enc)
    idx = torch.randint(0, 50, (1, 7))
    padded = torch.cat([idx, torch.zeros(1, 3, dtype=torch.long)], dim=1)
    alone = enc.transformer.forward_hidden(idx)
    with_pad = enc.transformer.forward_hidden(padded, torch.tensor([[1] * 7 + [0] * 3]))
    assert torch.allclose(alone, with_pad[:, :7], atol=1e-5)  # padding is invisible
    s2s = Seq2SeqLM(relative("encoder_decoder", n_dec_layer=1))
    assert s2s.encoder.rel_bias is not s2s.decoder.rel_bias  # one table per stack
    assert s2s.encoder.rel_bias.bidirectional and not s2s.decoder.rel_bias.bidirectional
    src, tgt = torch.randint(0, 50, (2, 8)), torch.randint(0, 50, (2, 5))
    _, loss = s2s(src, tgt, tgt)
    loss.backward()
    for stack in (s2s.encoder, s2s.decoder):  # the tables learn
        assert stack.rel_bias.bias.weight.grad.abs().sum() > 0


def test_configs_take_relative():
    from pipeline.configtypes import ConfigError, build
    from pipeline.pretrain.config import PretrainConfig, may_change_when_continuing
    cfg = build(PretrainConfig, {"model": {"arch": "encoder_decoder", "pos": "relative", "n_embd": 24,
                                           "n_head": 8}})  # an odd head size is fine without rotary
    assert cfg.model.pos == "relative" and "block_size" in may_change_when_continuing(cfg.model)
    with pytest.raises(ConfigError, match="relative"):
        build(PretrainConfig, {"model": {"pos": "alibi"}})
    with pytest.raises(ValueError, match="relative"):
        ModelConfig(pos="alibi")


def test_relative_bias_under_bf16_autocast():
    torch.manual_seed(0)
    model = CausalLM(relative("decoder"))
    idx = torch.randint(0, 50, (2, 10))
    mask = torch.tensor([[1] * 10, [1] * 6 + [0] * 4])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bias = model.transformer._with_bias(None, 0, 10)
        assert bias.dtype == torch.bfloat16  # cast once for every layer
        logits, loss = model(idx, idx)
        h = model.transformer.forward_hidden(idx, mask)
    (loss + h.float().sum() * 0).backward()
    assert torch.isfinite(logits.float()).all() and model.transformer.rel_bias.bias.weight.grad.abs().sum() > 0
