"""Sequence and token classification heads on a trunk: pooling, weights, ignored labels."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from model import CausalLM, MaskedLM, ModelConfig, SequenceClassifier, TokenClassifier
from model.heads import pool
from model.adapters import apply_adapters
from model.lora import apply_lora, merge_lora


def encoder_trunk():
    cfg = ModelConfig(arch="encoder", n_layer=1, n_head=2, n_embd=16, block_size=8, vocab_size=30)
    return MaskedLM(cfg).transformer


def test_pooling_picks_the_right_vectors():
    h = torch.arange(2 * 4 * 3, dtype=torch.float32).view(2, 4, 3)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    assert torch.equal(pool(h, mask, "first"), h[:, 0])
    assert torch.equal(pool(h, mask, "last"), torch.stack([h[0, 1], h[1, 3]]))
    assert torch.allclose(pool(h, mask, "mean"), torch.stack([h[0, :2].mean(0), h[1].mean(0)]))
    assert torch.equal(pool(h, None, "last"), h[:, -1])
    w = torch.tensor([1.0, 2.0])  # position-weighted mean: the t-th real token weighs t
    assert torch.allclose(pool(h, mask, "weighted_mean"), torch.stack([
        (h[0, :2] * w[:, None]).sum(0) / 3, (h[1] * torch.arange(1.0, 5.0)[:, None]).sum(0) / 10]))
    # max over the real tokens only: the padded positions of row 0 hold its largest values
    assert torch.equal(pool(h, mask, "max"), torch.stack([h[0, 1], h[1, 3]]))
    hn = -h  # all negative: a zero-filled padding would win the max
    assert torch.equal(pool(hn, mask, "max"), torch.stack([hn[0, 0], hn[1, 0]]))
    assert torch.equal(pool(hn, None, "max"), hn[:, 0])
    assert torch.equal(pool(hn, torch.tensor([[0, 0, 0, 0], [1, 0, 0, 0]]), "max"),
                       torch.stack([torch.zeros(3), hn[1, 0]]))  # no real token: zeros, not -3.4e38


@pytest.mark.parametrize("pooling", ["first", "last", "mean", "max", "weighted_mean"])
def test_pooling_reads_the_real_tokens_on_either_side_of_the_padding(pooling):
    """``pool`` assumed right padding: with left padding, first / last / weighted_mean read padding (a reviewer)."""
    real = torch.randn(2, 3, 5)
    right = torch.cat([real, torch.randn(2, 2, 5)], dim=1)  # padding positions hold junk
    left = torch.cat([torch.randn(2, 2, 5), real], dim=1)
    r_mask, l_mask = torch.tensor([[1, 1, 1, 0, 0]] * 2), torch.tensor([[0, 0, 1, 1, 1]] * 2)
    assert torch.allclose(pool(right, r_mask, pooling), pool(left, l_mask, pooling), atol=1e-6)
    assert torch.allclose(pool(right, r_mask, pooling), pool(real, None, pooling), atol=1e-6)


@pytest.mark.parametrize("pooling", ["first", "last", "mean", "max", "weighted_mean"])
def test_sequence_classifier_shapes_and_weighted_loss(pooling):
    clf = SequenceClassifier(encoder_trunk(), n_labels=3, pooling=pooling)
    idx = torch.randint(0, 30, (4, 8))
    mask = torch.ones(4, 8, dtype=torch.long)
    mask[0, 5:] = 0
    labels = torch.tensor([0, 2, 1, -100])
    weights = torch.tensor([1.0, 2.0, 0.5])
    logits, loss = clf(idx, mask, labels, class_weights=weights)
    assert logits.shape == (4, 3)
    assert torch.allclose(loss, F.cross_entropy(logits[:3], labels[:3], weight=weights), atol=1e-6)


def test_last_pooling_on_a_causal_trunk_ignores_right_padding():
    lm = CausalLM(ModelConfig.nanogpt(n_layer=1, n_head=2, n_embd=16, block_size=8, vocab_size=30))
    clf = SequenceClassifier(lm.transformer, n_labels=2, pooling="last").eval()
    idx = torch.randint(0, 30, (1, 5))
    padded = torch.cat([idx, torch.zeros(1, 3, dtype=torch.long)], dim=1)
    a, _ = clf(idx)
    b, _ = clf(padded, torch.tensor([[1] * 5 + [0] * 3]))
    assert torch.allclose(a, b, atol=1e-5)
    assert clf.trunk is lm.transformer  # composition: the pretrained trunk itself


def test_token_classifier_ignores_minus_100():
    clf = TokenClassifier(encoder_trunk(), n_labels=5)
    idx = torch.randint(0, 30, (2, 8))
    labels = torch.randint(0, 5, (2, 8))
    labels[:, 6:] = -100
    logits, loss = clf(idx, labels=labels)
    assert logits.shape == (2, 8, 5)
    assert torch.allclose(loss, F.cross_entropy(logits[:, :6].reshape(-1, 5), labels[:, :6].reshape(-1)), atol=1e-6)


def test_bad_head_arguments():
    with pytest.raises(ValueError, match="pooling='cls'"):
        SequenceClassifier(encoder_trunk(), 2, pooling="cls")
    with pytest.raises(ValueError, match="n_labels=0"):
        TokenClassifier(encoder_trunk(), 0)


def test_set_dropout_reaches_every_dropout_of_the_trunk_and_checks_its_value():
    from model.attention import CrossAttention, SelfAttention
    from model.transformer import Transformer
    trunk = Transformer(ModelConfig(n_layer=2, n_head=2, n_embd=16, block_size=8, vocab_size=50, dropout=0.2),
                        cross=True)
    trunk.set_dropout(0.05)
    ps = [m.p for m in trunk.modules() if isinstance(m, torch.nn.Dropout)]
    attn = [m.dropout for m in trunk.modules() if isinstance(m, (SelfAttention, CrossAttention))]
    # the embeddings' dropout, then per block: self-attention, cross-attention and MLP outputs
    assert len(ps) == 1 + 2 * 3 and len(attn) == 4 and set(ps) | set(attn) == {0.05}
    with pytest.raises(ValueError, match="dropout=1.0"):
        trunk.set_dropout(1.0)


@pytest.mark.parametrize("head", ["sequence", "token"])
def test_aux_lm_adds_the_next_token_loss_in_training_only(head):
    torch.manual_seed(0)
    cfg = ModelConfig.nanogpt(n_layer=1, n_head=2, n_embd=16, block_size=8, vocab_size=30)
    lm = CausalLM(cfg)
    clf = (SequenceClassifier(lm.transformer, 2, pooling="mean") if head == "sequence"
           else TokenClassifier(lm.transformer, 2))
    idx = torch.randint(0, 30, (3, 8))
    mask = torch.ones(3, 8, dtype=torch.long)
    mask[0, 5:] = 0
    labels = torch.tensor([0, 1, 1]) if head == "sequence" else torch.randint(0, 2, (3, 8)).masked_fill(mask == 0, -100)
    clf.train()
    _, task = clf(idx, mask, labels)
    clf.set_aux_lm(0.5, cfg.vocab_size)
    _, both = clf(idx, mask, labels)
    lm_logits, _ = lm(idx, attention_mask=mask)  # the pretrained LM's own next-token logits
    target = idx[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
    want = F.cross_entropy(lm_logits[:, :-1].reshape(-1, 30), target.reshape(-1), ignore_index=-100)
    assert torch.allclose(both, task + 0.5 * want, atol=1e-5)
    padded = idx.clone()
    padded[0, 5:] = 7  # what sits in the padding changes nothing
    assert torch.allclose(clf(padded, mask, labels)[1], both, atol=1e-5)
    clf.eval()  # validation loss is the task's alone
    assert torch.allclose(clf(idx, mask, labels)[1], task, atol=1e-6)
    with pytest.raises(ValueError, match="causal"):
        SequenceClassifier(encoder_trunk(), 2).set_aux_lm(0.5)


def test_aux_lm_reads_the_adapter_embedding_rows():
    torch.manual_seed(0)
    cfg = ModelConfig.nanogpt(n_layer=1, n_head=2, n_embd=16, block_size=8, vocab_size=30)
    clf = SequenceClassifier(CausalLM(cfg).transformer, 2, pooling="mean")
    apply_adapters(clf.trunk, bottleneck=4, where=["embed"])
    with torch.no_grad():
        clf.trunk.wte.adapter_embed.up.weight.normal_()  # a trained-looking adapter (not the identity)
    idx, labels = torch.randint(0, 30, (3, 8)), torch.tensor([0, 1, 1])
    clf.train()
    _, task = clf(idx, None, labels)
    clf.set_aux_lm(0.5, cfg.vocab_size)
    _, both = clf(idx, None, labels)
    rows = clf.trunk.wte.adapter_embed(clf.trunk.wte.weight)  # a(e_t) for every token t
    assert not torch.allclose(rows, clf.trunk.wte.weight)
    logits = clf.trunk.forward_hidden(idx)[:, :-1] @ rows[:30].t()
    want = F.cross_entropy(logits.reshape(-1, 30), idx[:, 1:].reshape(-1))
    assert torch.allclose(both, task + 0.5 * want, atol=1e-5)


def test_aux_lm_reads_the_lora_adapted_embedding_table():
    torch.manual_seed(0)
    cfg = ModelConfig.nanogpt(n_layer=1, n_head=2, n_embd=16, block_size=8, vocab_size=30)
    lm = CausalLM(cfg)
    clf = SequenceClassifier(lm.transformer, 2, pooling="mean")
    apply_lora(clf.trunk, ["wte"], r=2, alpha=4.0)
    with torch.no_grad():
        clf.trunk.wte.lora_A.normal_()  # a trained-looking update (A starts at zero)
    idx, labels = torch.randint(0, 30, (3, 8)), torch.tensor([0, 1, 1])
    clf.train()
    _, task = clf(idx, None, labels)
    clf.set_aux_lm(0.5, cfg.vocab_size)
    _, both = clf(idx, None, labels)
    both.backward()
    assert clf.trunk.wte.lora_A.grad.abs().sum() > 0
    merge_lora(clf.trunk)  # the tied LM head now reads the merged table: the same next-token loss
    lm_logits, _ = lm(idx)
    want = F.cross_entropy(lm_logits[:, :-1].reshape(-1, 30), idx[:, 1:].reshape(-1))
    assert torch.allclose(both, task + 0.5 * want, atol=1e-5)


def test_mlp_head_is_robertas_and_peft_trains_it_whole():
    """head="mlp": dense -> tanh -> dropout -> labels, by hand; LoRA and adapters train it with their own."""
    from model.lora import mark_only_lora_trainable
    torch.manual_seed(0)
    clf = SequenceClassifier(encoder_trunk(), n_labels=3, pooling="mean", head="mlp").eval()
    idx = torch.randint(0, 30, (2, 5))
    h = pool(clf.trunk.forward_hidden(idx), None, "mean")
    by_hand = torch.tanh(h @ clf.head.dense.weight.T + clf.head.dense.bias) @ clf.head.out.weight.T + clf.head.out.bias
    assert torch.allclose(clf(idx)[0], by_hand, atol=1e-6)
    apply_lora(clf.trunk, ["attn.qkv"], r=2, alpha=4.0)
    mark_only_lora_trainable(clf, keep=("head",))
    trained = {n for n, p in clf.named_parameters() if p.requires_grad}
    assert {"head.dense.weight", "head.dense.bias", "head.out.weight", "head.out.bias"} <= trained
    assert all(n.startswith("head.") or "lora_" in n for n in trained)
    with pytest.raises(ValueError, match=r"head='deep': must be one of \('linear', 'mlp'\)"):
        TokenClassifier(encoder_trunk(), 2, head="deep")
