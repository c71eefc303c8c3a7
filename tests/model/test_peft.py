"""LoRA and Houlsby adapters: identity at init, exact merge, only the right parameters train."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from model import (
    AdaptedEmbedding, CausalLM, LoRAEmbedding, LoRALinear, MaskedLM, ModelConfig, SequenceClassifier,
    apply_adapters, apply_lora, mark_only_adapters_trainable, mark_only_lora_trainable, merge_lora, trainable_summary,
)


def lm() -> CausalLM:
    return CausalLM(ModelConfig(n_layer=2, n_head=2, n_embd=16, block_size=8, vocab_size=40, bias=True))


def classifier() -> SequenceClassifier:
    cfg = ModelConfig(arch="encoder", n_layer=2, n_head=2, n_embd=16, block_size=8, vocab_size=40)
    return SequenceClassifier(MaskedLM(cfg).transformer, n_labels=3)


def one_step(model: nn.Module, idx: torch.Tensor) -> dict[str, torch.Tensor]:
    """Snapshot all parameters, take one AdamW step on the trainable ones, return the snapshot."""
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    _, loss = model(idx, labels=torch.tensor([0, 2]))
    loss.backward()
    opt.step()
    return before


def changed(model: nn.Module, before: dict[str, torch.Tensor]) -> set[str]:
    return {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}


def test_lora_is_identity_at_init_and_keeps_base_names():
    model = lm().eval()
    idx = torch.randint(0, 40, (2, 8))
    base, _ = model(idx)
    base_keys = set(model.state_dict())
    names = apply_lora(model, targets=("qkv", "attn.proj", "mlp.fc"), r=4, alpha=8)
    assert names == [f"transformer.blocks.{i}.{n}" for i in range(2) for n in ("attn.qkv", "attn.proj", "mlp.fc")]
    assert torch.equal(model(idx)[0], base)
    new_keys = set(model.state_dict()) - base_keys
    assert base_keys <= set(model.state_dict())
    assert new_keys == {f"{n}.lora_{m}" for n in names for m in "AB"}


def test_lora_merge_equals_unmerged_output():
    model = lm().eval()
    apply_lora(model, targets=("qkv", "proj"), r=4, alpha=8)  # "proj" = attention and MLP outputs
    with torch.no_grad():
        for sub in model.modules():
            if isinstance(sub, LoRALinear):
                sub.lora_B.normal_(std=0.1)  # a trained, non-zero update
    idx = torch.randint(0, 40, (2, 8))
    unmerged, _ = model(idx)
    merged_names = merge_lora(model)
    assert len(merged_names) == 6
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    assert torch.allclose(model(idx)[0], unmerged, atol=1e-5)


def test_lora_on_the_token_embedding_starts_at_identity_merges_exactly_and_moves_seen_tokens_only():
    model = classifier().eval()
    idx = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 9, 9, 9, 9, 9]])
    base, _ = model(idx)
    assert apply_lora(model, targets=("wte", "qkv"), r=4, alpha=8) == [
        "trunk.wte", "trunk.blocks.0.attn.qkv", "trunk.blocks.1.attn.qkv"]
    emb = model.trunk.wte
    assert isinstance(emb, LoRAEmbedding) and emb.weight.shape == (64, 16)  # the vocabulary padded to 64
    assert torch.equal(model(idx)[0], base)  # A starts at zero
    mark_only_lora_trainable(model, keep=("head",))
    # Embedding: A 4x64 + B 16x4; each qkv: A 4x16 + B 48x4; head 16*3+3.
    assert trainable_summary(model)[0] == (256 + 64) + 2 * (64 + 192) + 51
    before = one_step(model.train(), idx)
    a_now, a_before = emb.lora_A.detach(), before["trunk.wte.lora_A"]
    moved = (a_now != a_before).any(dim=0).nonzero().flatten().tolist()
    assert moved == list(range(1, 10))  # only the columns of the tokens in the batch
    unmerged, _ = model.eval()(idx)
    other = torch.tensor([[0, 10, 20, 30, 39, 1, 2, 3]])
    unmerged_other, _ = model(other)
    assert merge_lora(model) == ["trunk.wte", "trunk.blocks.0.attn.qkv", "trunk.blocks.1.attn.qkv"]
    assert type(model.trunk.wte) is nn.Embedding
    assert torch.allclose(model(idx)[0], unmerged, atol=1e-5)
    assert torch.allclose(model(other)[0], unmerged_other, atol=1e-5)


def test_only_lora_and_head_change_after_a_step():
    model = classifier()
    apply_lora(model, r=2)
    mark_only_lora_trainable(model, keep=("head",))
    trainable, total = trainable_summary(model)
    lora_and_head = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n or n.startswith("head."))
    assert trainable == lora_and_head and total > trainable
    before = one_step(model, torch.randint(0, 40, (2, 8)))
    moved = changed(model, before)
    allowed = {n for n in before if "lora_" in n or n.startswith("head.")}
    assert moved <= allowed
    # lora_A gets a zero gradient on the first step (B starts at zero), so require B and the head.
    assert {n for n in allowed if not n.endswith("lora_A")} <= moved


def test_adapters_are_identity_at_init_and_only_they_and_head_train():
    model = classifier().eval()
    idx = torch.randint(0, 40, (2, 8))
    base, _ = model(idx)
    names = apply_adapters(model, bottleneck=4)
    assert names == [f"trunk.blocks.{i}.adapter_{p}" for i in range(2) for p in ("attn", "mlp")]
    assert torch.equal(model(idx)[0], base)
    mark_only_adapters_trainable(model, keep=("head",))
    # Per adapter: down 16*4+4, up 4*16+16 = 148; four adapters; head 16*3+3 = 51.
    assert trainable_summary(model)[0] == 4 * 148 + 51
    before = one_step(model.train(), idx)
    moved = changed(model, before)
    assert moved and all(".adapter_" in n or n.startswith("head.") for n in moved)
    assert any(n.endswith("up.weight") for n in moved)


def test_embedding_adapter_starts_as_identity_and_only_it_and_the_head_train():
    model = classifier().eval()
    idx = torch.randint(0, 40, (2, 8))
    base, _ = model(idx)
    assert apply_adapters(model, bottleneck=4, where=("embed",)) == ["trunk.wte.adapter_embed"]
    assert isinstance(model.trunk.wte, AdaptedEmbedding) and "trunk.wte.weight" in model.state_dict()
    assert torch.equal(model(idx)[0], base)
    mark_only_adapters_trainable(model, keep=("head",))
    assert trainable_summary(model)[0] == 148 + 51  # one adapter (16 -> 4 -> 16) and the head
    before = one_step(model.train(), idx)
    moved = changed(model, before)
    assert {"trunk.wte.adapter_embed.up.weight", "head.weight"} <= moved
    assert all(n.startswith(("trunk.wte.adapter_embed.", "head.")) for n in moved)


def test_parallel_adapter_reads_the_sublayer_input_and_scales_its_output():
    torch.manual_seed(0)
    model = classifier().eval()
    idx = torch.randint(0, 40, (2, 8))
    base, _ = model(idx)
    apply_adapters(model, bottleneck=4, where=("mlp",), form="parallel", scale=4.0)
    assert torch.equal(model(idx)[0], base)
    block = model.trunk.blocks[0]
    a = block.adapter_mlp
    with torch.no_grad():
        a.up.weight.normal_(std=0.1)
    x = torch.randn(2, 8, 16)
    n = block.ln_2(x)
    by_hand = block.mlp(n) + 4.0 * (F.gelu(n @ a.down.weight.T + a.down.bias) @ a.up.weight.T + a.up.bias)
    assert torch.allclose(a(block.mlp(n), n), by_hand, atol=1e-6)
    # in the block: x + attn(ln_1 x) (no attention adapter), then + mlp(ln_2 x) + the adapter beside it
    with torch.no_grad():
        x1 = x + block.attn(block.ln_1(x))
        n1 = block.ln_2(x1)
        expect = x1 + block.mlp(n1) + 4.0 * a.up(F.gelu(a.down(n1)))
        assert torch.allclose(block(x), expect, atol=1e-5)
    with pytest.raises(ValueError, match="allowed"):
        apply_adapters(classifier(), form="serial")


@pytest.mark.parametrize("init, bound", [("near_identity", 1e-2), ("kaiming", 16 ** -0.5)])
def test_adapter_inits_start_as_identity_at_their_scale(init, bound):
    torch.manual_seed(0)
    model = classifier().eval()
    idx = torch.randint(0, 40, (2, 8))
    base, _ = model(idx)
    apply_adapters(model, bottleneck=4, init=init)
    assert torch.equal(model(idx)[0], base)  # the up projection starts at zero
    down = torch.cat([m.down.weight.flatten() for n, m in model.named_modules() if n.endswith("adapter_mlp")])
    # near_identity: N(0, 1e-3), so |w| < 1e-2; kaiming: nn.Linear's U(-1/sqrt(16), 1/sqrt(16)), spread over it
    assert down.abs().max() <= bound
    assert down.abs().max() > bound / 2 if init == "kaiming" else down.std() < 2e-3


def test_peft_errors_are_clear():
    with pytest.raises(ValueError, match=r"nn.Linear or nn.Embedding matches 'q_proj'; allowed: attn.proj, attn.qkv"):
        apply_lora(lm(), targets=("q_proj",))
    with pytest.raises(ValueError, match=r"matches 'mlp.fcc'; allowed"):  # one typo among good targets: not ignored
        apply_lora(lm(), targets=("attn.qkv", "mlp.fcc"))
    with pytest.raises(ValueError, match=r"transformer.wte shares its weight with \['lm_head'\]"):
        apply_lora(lm(), targets=("wte",))  # tied to the output layer
    with pytest.raises(ValueError, match="unknown places"):
        apply_adapters(lm(), where=("ffn",))
    with pytest.raises(ValueError, match="allowed"):
        apply_adapters(lm(), init="xavier")


def test_lora_on_a_shared_table_adapts_every_use_and_survives_save_and_merge(tmp_path):
    """An encoder-decoder's one token table (encoder.wte is decoder.wte): LoRA once wrapped the encoder's name
    only, so the decoder read the table without the update until merge_lora changed it for both."""
    from model import Seq2SeqLM, load_model, save_model
    cfg = ModelConfig(arch="encoder_decoder", n_layer=1, n_head=2, n_embd=16, block_size=8, vocab_size=40,
                      tie_embeddings=False)
    torch.manual_seed(0)
    s = Seq2SeqLM(cfg).eval()
    assert apply_lora(s, targets=("wte",), r=4, alpha=8) == ["encoder.wte", "decoder.wte"]
    assert s.encoder.wte is s.decoder.wte and isinstance(s.decoder.wte, LoRAEmbedding)
    with torch.no_grad():
        s.encoder.wte.lora_A.normal_(std=0.5)
    src, tgt = torch.randint(0, 40, (2, 6)), torch.randint(0, 40, (2, 5))
    unmerged = s(src, tgt)[0]
    save_model(s, cfg, tmp_path / "m")
    loaded, _ = load_model(tmp_path / "m")
    assert torch.allclose(loaded.eval()(src, tgt)[0], unmerged, atol=1e-6)
    merge_lora(s)
    assert torch.allclose(s(src, tgt)[0], unmerged, atol=1e-5)


def test_lora_refuses_the_lm_heads_it_could_not_train():
    """The LM heads are read by their weight (vocab_logits), never called: LoRA there trained nothing, and
    merged into a tied head it changed the token table."""
    small = ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=8, vocab_size=40)
    for model, target in ((CausalLM(small), "lm_head"), (CausalLM(small.replace(tie_embeddings=False)), "lm_head"),
                          (MaskedLM(small.replace(arch="encoder")), "head.decoder")):
        with pytest.raises(ValueError, match="is read by its weight, never called"):
            apply_lora(model, targets=(target,))
