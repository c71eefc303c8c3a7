"""FLOPs per token, MFU and device peaks on hand-computed numbers."""
from __future__ import annotations

import pytest

from model import PEAK_FLOPS, ModelConfig, device_peak_flops, flops_per_token, mfu, param_count


def test_flops_per_token_by_hand():
    # N (no wpe) = 7248 (see test_causal_lm); 6N = 43488; attention 12 * L2 * C16 * T8 = 3072.
    cfg = ModelConfig.nanogpt(n_layer=2, n_head=2, n_embd=16, block_size=8, vocab_size=64)
    assert flops_per_token(cfg) == 6 * 7248 + 12 * 2 * 16 * 8 == 46560
    assert flops_per_token(cfg, seq_len=4) == 43488 + 1536
    assert mfu(1000.0, cfg, peak=46560e3) == pytest.approx(1.0)


def test_gpt2_small_matches_nanogpt():
    cfg = ModelConfig.from_name("gpt2_small")
    assert param_count(cfg) == 123_587_328  # nanoGPT prints "number of parameters: 123.59M"
    assert flops_per_token(cfg) == 6 * 123_587_328 + 12 * 12 * 768 * 1024


def test_device_peaks():
    assert device_peak_flops("NVIDIA H200") == 989e12
    assert device_peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert device_peak_flops("NVIDIA H100 PCIe") == 756e12
    assert device_peak_flops("NVIDIA A100-SXM4-40GB") == 312e12
    assert device_peak_flops("cpu") is None
    assert PEAK_FLOPS["H100 SXM"] == 989e12


def test_seq2seq_flops_by_hand():
    """Each stack's tokens through its own weights: encoder blocks + ln_f 3,120 weights (LayerNorm 16, qkv 768,
    proj 256, LayerNorm 16, MLP 2 x 1,024, ln_f 16); the decoder's 4,160 (+ cross-attention: LayerNorm 16, q 256,
    kv 512, proj 256) and the tied head 64 x 16 = 1,024; attention 12 x 16 x (6 x 6 + 3 x (3 + 6))."""
    import dataclasses

    from model.flops import seq2seq_flops
    cfg = dataclasses.replace(ModelConfig.nanogpt(n_layer=1, n_head=2, n_embd=16, block_size=8, vocab_size=64),
                              arch="encoder_decoder")
    assert seq2seq_flops(cfg, 6, 3) == 6 * (3120 * 6 + (4160 + 1024) * 3) + 12 * 16 * (36 + 27) == 217_728
