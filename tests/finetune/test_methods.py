"""Fine-tuning methods: what each one trains, LoRA merging, two-stage freezing, early stopping."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from model import trainable_summary
from pipeline.finetune import modeling, trainer
from pipeline.configtypes import ConfigError
from pipeline.configtypes import build as build_config
from pipeline.finetune.config import FinetuneConfig
from pipeline.finetune.scoring import predict

from finetune.toy import LABELS, build, changed, run_fit, snapshot

CFG = FinetuneConfig(epochs=2, batch_size=8, lr=5e-3, head_lr=5e-3, warmup_ratio=0.0, patience=5, weight_decay=0.0)


@pytest.mark.parametrize("method,own", [("lora", ("lora_A", "lora_B")), ("adapter", (".adapter_",))])
def test_peft_changes_only_its_own_and_the_head_parameters(pretrained_root, data, method, own):
    model = build(pretrained_root, method, CFG)
    before = snapshot(model)
    run_fit(model, method, data, CFG)
    moved = changed(before, model)
    assert {k for k in moved if k.startswith("head.")} == {"head.weight", "head.bias"}
    body = moved - {"head.weight", "head.bias"}
    assert body and all(any(o in k for o in own) for k in body)
    n_own = sum(v.numel() for k, v in model.named_parameters() if any(o in k for o in own))
    trainable, total = trainable_summary(model)
    assert trainable == n_own + model.head.weight.numel() + model.head.bias.numel() < total


def test_full_changes_the_trunk(pretrained_root, data):
    model = build(pretrained_root, "full", CFG)
    before = snapshot(model)
    run_fit(model, "full", data, CFG)
    assert any(k.startswith("trunk.blocks.0.attn") for k in changed(before, model))


def test_freeze_keeps_the_named_trunk_modules_in_every_phase(pretrained_root, data):
    cfg = dataclasses.replace(CFG, methods=["two_stage"], then="full", head_epochs=1, weight_decay=0.1,
                              freeze=["wte", "blocks.0"])
    model = build(pretrained_root, "two_stage", cfg)
    frozen = modeling.frozen_names(model, cfg.freeze)
    assert "trunk.wte.weight" in frozen and "trunk.blocks.0.attn.qkv.weight" in frozen
    assert not any(k.startswith(("trunk.blocks.1", "trunk.wpe", "head")) for k in frozen)
    before = snapshot(model)
    run_fit(model, "two_stage", data, cfg)
    moved = changed(before, model)
    assert not moved & frozen  # not trained, and not decayed either
    assert any(k.startswith("trunk.blocks.1.") for k in moved)
    n_frozen = sum(p.numel() for k, p in model.named_parameters() if k in frozen)
    assert trainable_summary(model)[0] == trainable_summary(model)[1] - n_frozen
    with pytest.raises(ValueError, match=r"finetune.freeze: 'blocks.9' names no trunk parameter.*wte"):
        modeling.frozen_names(model, ["blocks.9"])
    with pytest.raises(ValueError, match="finetune.freeze"):
        modeling.frozen_names(model, ["wt"])  # a path, not a name's prefix


def test_freeze_leaves_the_lora_update_of_a_frozen_module_training(pretrained_root, data):
    cfg = dataclasses.replace(CFG, lora_targets=["attn.qkv", "wte"], freeze=["wte"])
    model = build(pretrained_root, "lora", cfg)
    assert modeling.frozen_names(model, cfg.freeze) == {"trunk.wte.weight"}
    before = snapshot(model)
    run_fit(model, "lora", data, cfg)
    moved = changed(before, model)
    assert "trunk.wte.weight" not in moved and "trunk.wte.lora_A" in moved
    with pytest.raises(ValueError, match="finetune.freeze: 'wte.lora_A' names no trunk parameter"):
        modeling.frozen_names(model, ["wte.lora_A"])


@pytest.mark.parametrize("bad", [[""], ["head"], [3]])
def test_freeze_rejects_what_is_not_a_trunk_path(bad):
    with pytest.raises(ConfigError, match="finetune.freeze"):
        FinetuneConfig(freeze=bad)


def test_lora_merge_gives_the_same_outputs(pretrained_root, data, tokenizer, tmp_path):
    model = build(pretrained_root, "lora", CFG)
    run_fit(model, "lora", data, CFG)
    model.eval()
    _, _, tr_enc, va_enc = data
    idx = torch.tensor(va_enc.ids[0])[None]
    with torch.no_grad():
        unmerged = model(idx)[0]
    assert modeling.has_lora(model)
    modeling.save(model, modeling.load_config(pretrained_root / "model"), tmp_path / "m",
                  pretrained_root / "model" / "tokenizer" / "tokenizer.model", {"labels": LABELS})
    assert not modeling.has_lora(model)  # merged in place before saving
    with torch.no_grad():
        merged = model(idx)[0]
    reloaded, _, meta = modeling.load(tmp_path / "m")
    reloaded.eval()
    with torch.no_grad():
        again = reloaded(idx)[0]
    assert torch.allclose(unmerged, merged, atol=1e-5)
    assert torch.allclose(unmerged, again, atol=1e-5)
    assert "adapters" not in meta and not modeling.has_lora(reloaded)


@pytest.mark.parametrize("form, scale, where", [("sequential", 1.0, ["mlp"]), ("parallel", 4.0, ["mlp", "embed"])])
def test_adapter_model_reloads_with_its_adapters(pretrained_root, data, tmp_path, form, scale, where):
    cfg = FinetuneConfig(epochs=1, batch_size=8, lr=5e-3, adapter_bottleneck=4, adapter_where=where,
                         adapter_init="kaiming", adapter_form=form, adapter_scale=scale)
    model = build(pretrained_root, "adapter", cfg)
    # the configured init reached the adapters: nn.Linear's scale, not near_identity's N(0, 1e-3)
    assert model.trunk.blocks[0].adapter_mlp.down.weight.abs().max() > 1e-2
    meta = modeling.add_method_modules(modeling.build("classification", 2, modeling.load_config(
        pretrained_root / "model"), None, "auto", 0.0, 0), "adapter", cfg)
    run_fit(model, "adapter", data, cfg)
    modeling.save(model, modeling.load_config(pretrained_root / "model"), tmp_path / "a",
                  pretrained_root / "model" / "tokenizer" / "tokenizer.model", meta)
    reloaded, _, m = modeling.load(tmp_path / "a")
    assert m["adapters"] == {"bottleneck": 4, "where": where, "form": form, "scale": scale}
    assert reloaded.trunk.blocks[0].adapter_mlp.form == form
    _, _, _, va_enc = data
    p1, l1 = predict(model, va_enc, False, 0, 8)
    p2, l2 = predict(reloaded, va_enc, False, 0, 8)
    assert p1 == p2 and l1 == pytest.approx(l2, abs=1e-6)


@pytest.mark.parametrize("then, stage2", [
    ("full", lambda k: True),
    ("lora", lambda k: k.startswith("head.") or k.endswith(("lora_A", "lora_B"))),  # the LoRA of bench/sst2.py
    ("adapter", lambda k: k.startswith("head.") or ".adapter_" in k),
])
def test_two_stage_freezes_the_body_in_stage_one(pretrained_root, data, then, stage2):
    cfg = FinetuneConfig(methods=["two_stage"], epochs=2, head_epochs=1, then=then, batch_size=8, lr=5e-3,
                         head_lr=5e-3, peft_lr=5e-3, patience=5)
    model = build(pretrained_root, "two_stage", cfg)
    before = snapshot(model)
    seen = []
    run_fit(model, "two_stage", data, cfg, log=lambda m, i: seen.append(changed(before, model)))
    after_stage1, after_stage2 = seen[0], seen[-1]
    assert after_stage1 == {"head.weight", "head.bias"}
    assert any(k.startswith("trunk.") for k in after_stage2)
    assert all(stage2(k) for k in after_stage2)


def test_two_stage_with_max_steps_inside_the_head_phase_is_refused(pretrained_root, data):
    """48 examples, batch 8: the head phase takes 6 steps; max_steps=4 once trained the head alone and reported
    the second stage's trainable parameters."""
    from pipeline.configtypes import ConfigError
    cfg = FinetuneConfig(methods=["two_stage"], epochs=2, head_epochs=1, then="lora", batch_size=8, max_steps=4)
    with pytest.raises(ConfigError, match=r"finetune.max_steps: got 4, allowed: > 6 .*head_epochs=1 x 6 steps"):
        run_fit(build(pretrained_root, "two_stage", cfg), "two_stage", data, cfg)
    cfg = dataclasses.replace(cfg, max_steps=7)
    assert run_fit(build(pretrained_root, "two_stage", cfg), "two_stage", data, cfg).steps == 7


def test_early_stopping_restores_the_best(pretrained_root, data, monkeypatch):
    """Validation accuracy peaks at the 2nd evaluation: with patience 2 training stops after the 4th,
    and the model ends with the 2nd evaluation's weights."""
    scripted = iter([0.5, 0.9, 0.6, 0.4, 0.3, 0.2, 0.1, 0.0])
    monkeypatch.setattr(trainer, "metrics", lambda *a, **k: {"accuracy": next(scripted)})
    cfg = FinetuneConfig(epochs=8, batch_size=8, lr=5e-3, head_lr=5e-3, patience=2, warmup_ratio=0.0)
    model = build(pretrained_root, "full", cfg)
    states = []
    result = run_fit(model, "full", data, cfg,
                     log=lambda m, i: states.append({k: v.clone() for k, v in model.state_dict().items()}))
    assert [round(c["val_accuracy"], 2) for c in result.curves] == [0.5, 0.9, 0.6, 0.4]
    assert result.stopped_early and result.best_epoch == 2.0 and result.best["accuracy"] == 0.9
    assert result.steps == 4 * 6  # 48 examples / batch 8 = 6 steps an epoch
    final = model.state_dict()
    assert all(torch.equal(final[k], states[1][k]) for k in final)
    assert not all(torch.equal(final[k], states[3][k]) for k in final)


def test_loss_metric_is_minimised_and_schedule_warms_up():
    assert trainer._improved(0.4, 0.5, "loss", 0.0) and not trainer._improved(0.6, 0.5, "loss", 0.0)
    assert not trainer._improved(0.505, 0.5, "accuracy", 0.01)
    assert [round(trainer.lr_scale(s, 10, 2), 3) for s in (0, 1, 2, 6, 9)] == [0.5, 1.0, 1.0, 0.5, 0.125]


def test_optimizer_groups_have_their_own_learning_rates(pretrained_root):
    cfg = FinetuneConfig()
    model = build(pretrained_root, "lora", cfg)
    modeling.set_trainable(model, "lora")
    opt = modeling.optimizer(model, lr=1e-4, head_lr=1e-2, weight_decay=0.1, peft_lr=3e-3)
    ids = {g["group"]: {id(p) for p in g["params"]} for g in opt.param_groups if g["weight_decay"] > 0}
    rates = {g["group"]: g["lr"] for g in opt.param_groups}
    assert rates == {"head": 1e-2, "peft": 3e-3}  # the frozen trunk is not in the optimizer
    assert ids["head"] == {id(model.head.weight)}  # the head's bias does not decay
    modeling.set_trainable(model, "full")
    opt = modeling.optimizer(model, lr=1e-4, head_lr=1e-2, weight_decay=0.1, peft_lr=3e-3)
    assert {g["group"]: g["lr"] for g in opt.param_groups} == {"body": 1e-4, "head": 1e-2, "peft": 3e-3}
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


def test_lora_plus_puts_the_zero_initialised_factors_in_a_faster_group(pretrained_root):
    cfg = FinetuneConfig(lora_targets=["attn.qkv", "wte"])
    model = build(pretrained_root, "lora", cfg)
    modeling.set_trainable(model, "lora")
    opt = modeling.optimizer(model, lr=1e-4, head_lr=1e-2, weight_decay=0.1, peft_lr=3e-3, lora_plus=16.0)
    names = {id(p): n for n, p in model.named_parameters()}
    by = {g["group"]: {names[id(p)] for p in g["params"]} for g in opt.param_groups}
    assert {g["group"]: g["lr"] for g in opt.param_groups} == {"head": 1e-2, "peft": 3e-3, "lora_zero": 3e-3 * 16}
    n_layer = len(model.trunk.blocks)
    assert by["lora_zero"] == {f"trunk.blocks.{i}.attn.qkv.lora_B" for i in range(n_layer)} | {"trunk.wte.lora_A"}
    assert by["peft"] == {f"trunk.blocks.{i}.attn.qkv.lora_A" for i in range(n_layer)} | {
        "trunk.wte.lora_B"}
    plain = modeling.optimizer(model, lr=1e-4, head_lr=1e-2, weight_decay=0.1, peft_lr=3e-3)
    assert {g["group"] for g in plain.param_groups} == {"head", "peft"}


@pytest.mark.parametrize("method,own", [("lora", ("lora_A", "lora_B")), ("adapter", (".adapter_",))])
def test_peft_norms_trains_the_norm_gains_at_the_peft_rate(pretrained_root, data, method, own):
    cfg = FinetuneConfig(epochs=2, batch_size=8, lr=5e-3, head_lr=5e-3, peft_lr=7e-3, warmup_ratio=0.0, patience=5,
                         weight_decay=0.0, peft_norms=True)
    model = build(pretrained_root, method, cfg)
    norms = modeling.norm_names(model)
    n_layer = len(model.trunk.blocks)
    assert norms == {f"trunk.blocks.{i}.ln_{j}.weight" for i in range(n_layer) for j in (1, 2)} | {"trunk.ln_f.weight"}
    before = snapshot(model)
    run_fit(model, method, data, cfg)
    moved = changed(before, model) - {"head.weight", "head.bias"}
    assert norms <= moved and all(k in norms or any(o in k for o in own) for k in moved)
    n_own = sum(v.numel() for k, v in model.named_parameters() if any(o in k for o in own))
    n_norms = (2 * n_layer + 1) * model.trunk.n_embd
    assert trainable_summary(model)[0] == n_own + n_norms + model.head.weight.numel() + model.head.bias.numel()
    opt = modeling.optimizer(model, lr=1e-4, head_lr=1e-2, weight_decay=0.1, peft_lr=7e-3, peft_extra=norms)
    peft = {id(p) for g in opt.param_groups if g["group"] == "peft" for p in g["params"]}
    assert {id(p) for k, p in model.named_parameters() if k in norms} <= peft
    assert {g["group"] for g in opt.param_groups} == {"head", "peft"}


def test_layer_decay_scales_each_blocks_rate(pretrained_root):
    model = build(pretrained_root, "lora", FinetuneConfig())
    n = len(model.trunk.blocks)
    scales = modeling.layer_scales(model, 0.5)
    assert scales["trunk.wte.weight"] == 0.5 ** (n + 1) and scales["trunk.ln_f.weight"] == 1.0
    assert all(scales[f"trunk.blocks.{i}.attn.qkv.weight"] == 0.5 ** (n - i) for i in range(n))
    assert not any(k.startswith("head.") for k in scales)
    modeling.set_trainable(model, "full")
    opt = modeling.optimizer(model, lr=1e-3, head_lr=1e-2, weight_decay=0.1, peft_lr=3e-3, layer_decay=0.5)
    rate = {id(p): (g["group"], g["lr"], g["base_lr"]) for g in opt.param_groups for p in g["params"]}
    for name, p in model.named_parameters():
        group, lr, base = rate[id(p)]
        want = {"head": 1e-2, "peft": 3e-3}.get(group, 1e-3 * scales.get(name, 1.0))
        assert lr == base == pytest.approx(want), name
    assert rate[id(model.trunk.blocks[0].attn.qkv.weight)][0] == "body"
    for bad in (1.5, 0.0):
        with pytest.raises(ConfigError, match=f"layer_decay: got {bad}, allowed"):
            build_config(FinetuneConfig, {"layer_decay": bad})


def test_layer_decay_reaches_the_update(pretrained_root, data):
    """Adam's first step moves each weight by lr (sign of its gradient, bias-corrected): so the largest
    change in block i is lr * decay ** (L - i) when the run is one step long."""
    cfg = dataclasses.replace(CFG, max_steps=1, layer_decay=0.5, lr=1e-3, grad_clip=0.0)
    model = build(pretrained_root, "full", cfg)
    before = snapshot(model)
    run_fit(model, "full", data, cfg)
    n = len(model.trunk.blocks)
    moved = {k: float((v.detach() - before[k]).abs().max()) for k, v in model.named_parameters()}
    for i in range(n):
        assert moved[f"trunk.blocks.{i}.mlp.fc.weight"] == pytest.approx(1e-3 * 0.5 ** (n - i), rel=1e-3)
    assert moved["trunk.wte.weight"] == pytest.approx(1e-3 * 0.5 ** (n + 1), rel=1e-3)
    assert moved["head.weight"] == pytest.approx(5e-3, rel=1e-3)


def test_peft_norms_leaves_full_fine_tuning_alone(pretrained_root):
    model = build(pretrained_root, "full", CFG)
    modeling.set_trainable(model, "full", norms=True)
    opt = modeling.optimizer(model, lr=1e-4, head_lr=1e-2, weight_decay=0.1, peft_lr=3e-3)
    assert {g["group"] for g in opt.param_groups} == {"body", "head"}
    modeling.set_trainable(model, "head", norms=True)  # two_stage's first phase: the head alone
    assert trainable_summary(model)[0] == model.head.weight.numel() + model.head.bias.numel()


def trunk_dropouts(model) -> set[float]:
    from model.attention import CrossAttention, SelfAttention
    return ({m.p for m in model.trunk.modules() if isinstance(m, torch.nn.Dropout)}
            | {m.dropout for m in model.trunk.modules() if isinstance(m, (SelfAttention, CrossAttention))})


@pytest.mark.parametrize("trunk_dropout,expect", [(None, 0.3), (0.0, 0.0), (0.1, 0.1)])
def test_trunk_dropout_overrides_the_model_configs_for_pretrained_and_scratch(tmp_path, trunk_dropout, expect):
    from finetune.tiny_pretrained import make_pretrained
    folder = make_pretrained(tmp_path, dropout=0.3) / "model"
    mcfg = modeling.load_config(folder)
    if trunk_dropout is not None:  # as the stage does with finetune.trunk_dropout
        mcfg = dataclasses.replace(mcfg, dropout=trunk_dropout)
    x = torch.randint(0, mcfg.vocab_size, (4, 12))
    for pretrained in (folder, None):
        model = modeling.build("classification", 2, mcfg, pretrained, "mean", 0.0, 0)
        assert trunk_dropouts(model) == {expect}
        model.train()
        same = torch.equal(model(x)[0], model(x)[0])  # training mode: only dropout makes two passes differ
        assert same == (expect == 0.0)


def test_reinit_top_draws_only_the_last_blocks_afresh_and_deterministically(pretrained_root):
    root = pretrained_root / "model"
    mcfg = modeling.load_config(root)
    plain = modeling.build("classification", 2, mcfg, root, "auto", 0.0, 0)
    fresh = modeling.build("classification", 2, mcfg, root, "auto", 0.0, 0, reinit_top=1)
    again = modeling.build("classification", 2, mcfg, root, "auto", 0.0, 0, reinit_top=1)
    last = f"trunk.blocks.{mcfg.n_layer - 1}."
    a, b = plain.state_dict(), fresh.state_dict()
    moved = {k for k in a if not torch.equal(a[k], b[k])}
    assert moved and all(k.startswith(last) for k in moved)
    assert all(torch.equal(b[k], again.state_dict()[k]) for k in b)  # the seed fixes the fresh draw
    assert torch.all(fresh.trunk.blocks[-1].ln_1.weight == 1.0)
    assert float(fresh.trunk.blocks[-1].mlp.fc.weight.detach().std()) == pytest.approx(0.02, rel=0.1)
    with pytest.raises(ConfigError, match="finetune.reinit_top: got 9"):
        modeling.check_trunk_options(mcfg, FinetuneConfig(reinit_top=9))


def test_a_lora_rank_beyond_the_targets_smaller_side_is_refused(pretrained_root):
    mcfg = modeling.load_config(pretrained_root / "model")
    side = min(mcfg.n_embd, 4 * mcfg.n_embd)  # mlp.fc: n_embd -> 4 n_embd; attn.proj: n_embd -> n_embd
    modeling.check_trunk_options(mcfg, FinetuneConfig(methods=["lora"], lora_r=side))
    with pytest.raises(ConfigError, match=rf"finetune.lora_r: got {side + 1}, allowed: 1 to {side} \(the smaller "
                                          r"side of .*'s weight"):
        modeling.check_trunk_options(mcfg, FinetuneConfig(methods=["lora"], lora_r=side + 1))
    modeling.check_trunk_options(mcfg, FinetuneConfig(methods=["full"], lora_r=side + 1))  # no LoRA run: unused


def test_validation_metrics_are_logged_at_the_optimizer_step(pretrained_root, data):
    """MLflow's x axis for a run's validation curve is the optimizer step (as in pretraining), not the
    evaluation's index, so evaluations every eval_every steps and every epoch plot alike."""
    cfg = FinetuneConfig(methods=["full"], epochs=2, batch_size=8, lr=5e-3, head_lr=5e-3, patience=5)
    steps = []
    fitted = run_fit(build(pretrained_root, "full", cfg), "full", data, cfg, log=lambda m, i: steps.append(i))
    assert steps == [c["step"] for c in fitted.curves] and steps[-1] == fitted.steps > len(steps)


def test_a_diverged_run_stops_with_the_step(pretrained_root, data):
    """NaN weights scored as a constant guess: the run could be kept and published."""
    from pipeline.stage import Diverged
    cfg = FinetuneConfig(epochs=2, batch_size=8, lr=1e30, head_lr=1e30, warmup_ratio=0.0, grad_clip=0.0,
                         weight_decay=0.0)
    with pytest.raises(Diverged, match=r"^finetune: the (training|validation) loss is (nan|inf) at step \d+ \(epoch "
                       r"[\d.]+\): the run diverged; lower finetune.lr"):
        run_fit(build(pretrained_root, "full", cfg), "full", data, cfg)
