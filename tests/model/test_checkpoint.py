"""safetensors + JSON checkpoints: identical logits after a round trip, tied weights, clear errors."""
from __future__ import annotations

import json

import pytest
import torch

from model import (
    CausalLM, MaskedLM, ModelConfig, Seq2SeqLM, SequenceClassifier, TokenClassifier, apply_adapters,
    apply_lora, load_model, save_model,
)

CONFIGS = {
    "nanogpt_tied": ModelConfig.nanogpt(n_layer=2, n_head=2, n_embd=16, block_size=8, vocab_size=50),
    "rotary_rmsnorm_untied": ModelConfig(n_layer=2, n_head=2, n_embd=16, block_size=8, vocab_size=50, norm="rmsnorm",
                                         pos="rotary", mlp="swiglu", bias=True, tie_embeddings=False, qk_norm=True),
    "encoder": ModelConfig(arch="encoder", n_layer=2, n_head=2, n_embd=16, block_size=8, vocab_size=50, bias=True),
    "seq2seq": ModelConfig(arch="encoder_decoder", n_layer=1, n_dec_layer=2, n_head=2, n_embd=16,
                           block_size=8, vocab_size=50, pos="rotary"),
    "seq2seq_relative": ModelConfig(arch="encoder_decoder", n_layer=1, n_dec_layer=1, n_head=2, n_embd=16,
                                    block_size=8, vocab_size=50, pos="relative"),
}
FAMILY = {"decoder": CausalLM, "encoder": MaskedLM, "encoder_decoder": Seq2SeqLM}


def outputs(model, cfg):
    idx = torch.arange(16).view(2, 8) % 50
    model.eval()
    if cfg.arch == "encoder_decoder":
        return model(idx, idx[:, :5])[0]
    return model(idx)[0]


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_round_trip_gives_identical_logits(name, tmp_path):
    cfg = CONFIGS[name]
    model = FAMILY[cfg.arch](cfg)
    with torch.no_grad():  # break the symmetric init so every tensor matters
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    save_model(model, cfg, tmp_path, extra_meta={"step": 7})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.json", "model.safetensors", "model_config.json"]
    loaded, cfg2 = load_model(tmp_path)
    assert cfg2 == cfg and type(loaded) is type(model)
    assert torch.equal(outputs(loaded, cfg), outputs(model, cfg))
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["step"] == 7
    if cfg.tie_embeddings:
        assert meta["tied"], "a tied model records its aliases"
        emb = loaded.encoder.wte.weight if cfg.arch == "encoder_decoder" else loaded.transformer.wte.weight
        head = loaded.head.decoder.weight if cfg.arch == "encoder" else loaded.lm_head.weight
        assert head is emb  # re-tied, not two copies


def test_compiled_model_prefix_is_stripped(tmp_path):
    cfg = CONFIGS["nanogpt_tied"]
    model = CausalLM(cfg)
    save_model(torch.compile(model), cfg, tmp_path / "whole")
    model.transformer = torch.compile(model.transformer)  # a compiled submodule
    save_model(model, cfg, tmp_path / "part")
    reference = outputs(model, cfg)
    for folder in ("whole", "part"):
        loaded, _ = load_model(tmp_path / folder)
        assert torch.equal(outputs(loaded, cfg), reference)


def test_classifier_round_trip(tmp_path):
    cfg = CONFIGS["encoder"]
    for i, clf in enumerate((SequenceClassifier(MaskedLM(cfg).transformer, 3, pooling="mean"),
                             TokenClassifier(MaskedLM(cfg).transformer, 4),
                             SequenceClassifier(MaskedLM(cfg).transformer, 3, pooling="mean", head="mlp"),
                             TokenClassifier(MaskedLM(cfg).transformer, 4, head="mlp", dropout=0.2))):
        save_model(clf, cfg, tmp_path / str(i))
        loaded, _ = load_model(tmp_path / str(i))
        idx = torch.randint(0, 50, (2, 8))
        assert torch.equal(loaded.eval()(idx)[0], clf.eval()(idx)[0])
        assert (loaded.n_labels, loaded.head_kind, loaded.dropout) == (clf.n_labels, clf.head_kind, clf.dropout)
    assert "head.dense.weight" in dict(loaded.named_parameters()) and loaded(idx)[0].shape == (2, 8, 4)


def test_unknown_config_keys_fail_clearly(tmp_path):
    cfg = CONFIGS["nanogpt_tied"]
    save_model(CausalLM(cfg), cfg, tmp_path)
    data = json.loads((tmp_path / "model_config.json").read_text()) | {"sliding_window": 4}
    (tmp_path / "model_config.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"unknown ModelConfig keys \['sliding_window'\]"):
        load_model(tmp_path)


def test_weights_that_do_not_fit_the_config_fail_clearly(tmp_path):
    cfg = CONFIGS["nanogpt_tied"]
    save_model(CausalLM(cfg), cfg, tmp_path)
    (tmp_path / "model_config.json").write_text(json.dumps(cfg.replace(n_layer=3).to_dict()))
    with pytest.raises(ValueError, match="missing .*blocks.2"):
        load_model(tmp_path)


def test_lora_and_adapter_models_round_trip(tmp_path):
    cfg = CONFIGS["encoder"]
    clf = SequenceClassifier(MaskedLM(cfg).transformer, 2)
    apply_adapters(clf, bottleneck=4, where=("mlp",))
    apply_lora(clf, targets=("qkv", "wte"), r=2, alpha=4.0)  # LoRA on the token embeddings too
    with torch.no_grad():
        for p in clf.parameters():
            p.add_(torch.randn_like(p) * 0.01)  # non-zero LoRA B (embedding: A) and adapter up projections
    save_model(clf, cfg, tmp_path)
    assert json.loads((tmp_path / "meta.json").read_text())["peft"] == {
        "adapters": {"bottleneck": 4, "where": ["mlp"]},
        "lora": {"alpha": 4.0, "dropout": 0.0, "r": 2,
                 "targets": ["trunk.blocks.0.attn.qkv", "trunk.blocks.1.attn.qkv", "trunk.wte"]},
    }
    loaded, _ = load_model(tmp_path)
    idx = torch.randint(0, 50, (2, 8))
    assert torch.equal(loaded.eval()(idx)[0], clf.eval()(idx)[0])


def test_embedding_adapter_round_trips_and_a_shared_table_gets_one_adapter(tmp_path):
    cfg = CONFIGS["seq2seq"]
    lm = Seq2SeqLM(cfg)
    names = apply_adapters(lm, bottleneck=4, where=("embed", "mlp"), form="parallel", scale=2.0)
    assert names.count("encoder.wte.adapter_embed") == 1 and not any("decoder.wte" in n for n in names)
    assert lm.decoder.wte is lm.encoder.wte and lm.lm_head.weight is lm.encoder.wte.weight  # still shared, tied
    with torch.no_grad():
        for p in lm.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    save_model(lm, cfg, tmp_path)
    assert json.loads((tmp_path / "meta.json").read_text())["peft"] == {
        "adapters": {"bottleneck": 4, "where": ["embed", "mlp"], "form": "parallel", "scale": 2.0}}
    loaded, _ = load_model(tmp_path)
    src, tgt = torch.randint(0, 50, (2, 8)), torch.randint(0, 50, (2, 5))
    assert torch.equal(loaded.eval()(src, tgt)[0], lm.eval()(src, tgt)[0])
