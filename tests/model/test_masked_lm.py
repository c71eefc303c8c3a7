"""MaskedLM: bidirectional, sparse prediction equals dense loss, padding is invisible."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from model import MaskedLM, ModelConfig


def encoder(**kw) -> ModelConfig:
    base = dict(arch="encoder", n_layer=2, n_head=2, n_embd=16, block_size=12, vocab_size=70)
    return ModelConfig(**(base | kw))


def mlm_labels(idx: torch.Tensor, rate: float = 0.3) -> torch.Tensor:
    labels = idx.clone()
    labels[torch.rand(idx.shape) > rate] = -100
    labels[0, 0] = idx[0, 0]  # at least one labelled position
    return labels


def test_encoder_is_bidirectional():
    model = MaskedLM(encoder()).eval()
    idx = torch.randint(0, 70, (2, 12))
    changed = idx.clone()
    changed[:, -1] = (changed[:, -1] + 1) % 70
    a, _ = model(idx)
    b, _ = model(changed)
    assert a.shape == (2, 12, 70)
    assert not torch.allclose(a[:, 0], b[:, 0], atol=1e-4)  # the first position sees the last


@pytest.mark.parametrize("kw", [{}, {"pos": "rotary", "norm": "rmsnorm", "bias": True, "tie_embeddings": False}])
def test_sparse_loss_equals_full_logits_loss_at_masked_positions(kw):
    model = MaskedLM(encoder(**kw))
    idx = torch.randint(0, 70, (3, 12))
    labels = mlm_labels(idx)
    sparse_logits, sparse_loss = model(idx, labels)
    picked = labels != -100
    assert sparse_logits.shape == (int(picked.sum()), 70)
    full_logits, dense_loss = model(idx, labels, predict_all=True)
    assert full_logits.shape == (3, 12, 70)
    restricted = F.cross_entropy(full_logits[picked], labels[picked])
    assert torch.allclose(sparse_loss, restricted, atol=1e-5)
    assert torch.allclose(dense_loss, restricted, atol=1e-5)
    assert torch.allclose(sparse_logits, full_logits[picked], atol=1e-5)
    # Gradients of the two paths agree too.
    g_sparse = torch.autograd.grad(sparse_loss, model.transformer.wte.weight)[0]
    g_dense = torch.autograd.grad(model(idx, labels, predict_all=True)[1], model.transformer.wte.weight)[0]
    assert torch.allclose(g_sparse, g_dense, atol=1e-6)


def test_padding_does_not_change_real_positions():
    model = MaskedLM(encoder()).eval()
    idx = torch.randint(0, 70, (1, 7))
    padded = torch.cat([idx, torch.zeros(1, 5, dtype=torch.long)], dim=1)
    mask = torch.tensor([[1] * 7 + [0] * 5])
    alone, _ = model(idx)
    with_pad, _ = model(padded, attention_mask=mask)
    assert torch.allclose(alone[0], with_pad[0, :7], atol=1e-5)
    assert torch.isfinite(with_pad).all()


def test_no_labelled_position_gives_zero_loss_with_a_graph():
    model = MaskedLM(encoder())
    idx = torch.randint(0, 70, (2, 12))
    logits, loss = model(idx, torch.full_like(idx, -100))
    assert logits.shape == (0, 70)
    assert loss.item() == 0.0 and loss.requires_grad
