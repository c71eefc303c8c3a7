"""Seq2SeqLM: shapes, causal decoder, encoder reaches the decoder, source padding is invisible."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from model import ModelConfig, Seq2SeqLM, param_count


def t5(**kw) -> ModelConfig:
    base = dict(arch="encoder_decoder", n_layer=2, n_dec_layer=1, n_head=2, n_embd=16,
                block_size=10, vocab_size=40, norm="rmsnorm", pos="rotary")
    return ModelConfig(**(base | kw))


def test_shapes_loss_and_shared_embedding():
    model = Seq2SeqLM(t5())
    src, tgt = torch.randint(0, 40, (3, 10)), torch.randint(0, 40, (3, 6))
    targets = torch.randint(0, 40, (3, 6))
    targets[:, -2:] = -100
    logits, loss = model(src, tgt, targets)
    assert logits.shape == (3, 6, 40)
    keep = targets != -100
    assert torch.allclose(loss, F.cross_entropy(logits[keep], targets[keep]), atol=1e-6)
    assert model.decoder.wte is model.encoder.wte and model.lm_head.weight is model.encoder.wte.weight
    assert len(model.encoder.blocks) == 2 and len(model.decoder.blocks) == 1
    assert param_count(model) == param_count(t5())
    assert model.generate_greedy(src, start_id=0, max_new_tokens=4).shape == (3, 5)


def test_decoder_is_causal_and_reads_the_encoder():
    model = Seq2SeqLM(t5(pos="learned")).eval()
    src, tgt = torch.randint(0, 40, (2, 10)), torch.randint(0, 40, (2, 6))
    base, _ = model(src, tgt)
    tgt2 = tgt.clone()
    tgt2[:, 4:] = (tgt2[:, 4:] + 1) % 40
    assert torch.allclose(base[:, :4], model(src, tgt2)[0][:, :4], atol=1e-6)
    src2 = src.clone()
    src2[:, -1] = (src2[:, -1] + 1) % 40
    assert not torch.allclose(base[:, 0], model(src2, tgt)[0][:, 0], atol=1e-4)


def test_source_padding_is_invisible():
    model = Seq2SeqLM(t5()).eval()
    src, tgt = torch.randint(0, 40, (1, 6)), torch.randint(0, 40, (1, 5))
    padded = torch.cat([src, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    mask = torch.tensor([[1] * 6 + [0] * 4])
    alone, _ = model(src, tgt)
    with_pad, _ = model(padded, tgt, src_mask=mask)
    assert torch.allclose(alone, with_pad, atol=1e-5)
