"""The ``checks`` section: our model on the device vs fp32 on the CPU (fp32 with TF32 off, bf16 autocast,
torch.compile vs eager), the device's fused AdamW vs a non-fused CPU AdamW, and a safetensors round trip."""
from __future__ import annotations

import contextlib
import copy
import tempfile
from pathlib import Path

import torch


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().float().cpu(), b.detach().float().cpu()
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


def fwd_bwd(model, x, y, ctx) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    with ctx:
        logits, loss = model(x, y)
    loss.backward()
    grads = {n.replace("_orig_mod.", ""): p.grad.detach().float().cpu()  # a compiled wrapper's prefix
             for n, p in model.named_parameters() if p.grad is not None}
    return logits.detach().float().cpu(), loss.detach().float().cpu(), grads


def compare(name: str, got, ref, tol: dict) -> dict:
    """Loss, logits and every gradient of ``got`` against ``ref`` (relative L2 errors), pass/fail."""
    (lg, ls, gg), (lr, lsr, gr) = got, ref
    worst = max(gr, key=lambda n: rel_err(gg[n], gr[n]))
    figs = {"loss": float(ls), "loss_ref": float(lsr), "loss_rel": abs(float(ls - lsr)) / abs(float(lsr)),
            "logits_rel": rel_err(lg, lr), "grad_rel_max": rel_err(gg[worst], gr[worst]), "grad_worst": worst,
            "grad_cos_min": min(float(torch.nn.functional.cosine_similarity(gg[n].flatten(), gr[n].flatten(), dim=0))
                                for n in gr)}
    ok = (figs["loss_rel"] <= tol["loss"] and figs["logits_rel"] <= tol["logits"] and figs["grad_rel_max"] <= tol["grad"]
          and set(gg) == set(gr))
    return {"name": name, "ok": ok, "tol": tol, **{k: (round(v, 7) if isinstance(v, float) else v) for k, v in figs.items()}}


def autocast(dev: torch.device, dtype: str):
    if dtype == "bf16":
        return torch.autocast(device_type=dev.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def parity_checks(dev: torch.device, smoke: bool) -> list[dict]:
    from model import CausalLM, ModelConfig
    shape = (2, 2, 64, 32, 300) if smoke else (4, 4, 256, 128, 1000)  # L, H, C, T, V
    out = []
    for recipe in ("modern", "nanogpt", "relative"):  # relative: T5's bias, a float mask through SDPA
        cfg = (ModelConfig.modern(*shape).replace(pos="relative") if recipe == "relative"
               else getattr(ModelConfig, recipe)(*shape))
        torch.manual_seed(0)
        ref_model = CausalLM(cfg).train()
        g = torch.Generator().manual_seed(1)
        x = torch.randint(0, cfg.vocab_size, (4, cfg.block_size), generator=g)
        y = torch.randint(0, cfg.vocab_size, (4, cfg.block_size), generator=g)
        ref = fwd_bwd(ref_model, x, y, contextlib.nullcontext())
        model = copy.deepcopy(ref_model).to(dev)
        xd, yd = x.to(dev), y.to(dev)
        tf32 = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        try:
            out.append(compare(f"{recipe} fp32 {dev.type} vs fp32 cpu", fwd_bwd(model, xd, yd, contextlib.nullcontext()), ref,
                               {"loss": 1e-3, "logits": 5e-3, "grad": 2e-2}))
        finally:
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
        bf16 = fwd_bwd(model, xd, yd, autocast(dev, "bf16"))
        out.append(compare(f"{recipe} bf16 autocast {dev.type} vs fp32 cpu", bf16, ref,
                           {"loss": 1e-2, "logits": 5e-2, "grad": 1.5e-1}))
        if not smoke and recipe in ("modern", "relative"):
            compiled = torch.compile(model, dynamic=False)
            out.append(compare(f"{recipe} bf16 compiled vs bf16 eager ({dev.type})",
                               fwd_bwd(compiled, xd, yd, autocast(dev, "bf16")), bf16,
                               {"loss": 1e-2, "logits": 5e-2, "grad": 1.5e-1}))
    return out


def adamw_check(dev: torch.device, smoke: bool) -> dict:
    """The device's AdamW (fused where it exists) vs a plain CPU AdamW, on identical gradients."""
    from model import CausalLM, ModelConfig, build_adamw
    cfg = ModelConfig.modern(2, 2, 64, 32, 300)
    torch.manual_seed(0)
    cpu_model = CausalLM(cfg)
    init = [p.detach().clone() for p in cpu_model.parameters()]
    dev_model = copy.deepcopy(cpu_model).to(dev)
    cpu_opt = build_adamw(cpu_model, 1e-2, (0.9, 0.95), 0.1, fused=False)
    dev_opt = build_adamw(dev_model, 1e-2, (0.9, 0.95), 0.1)
    g = torch.Generator().manual_seed(2)
    for _ in range(5):
        for pc, pd in zip(cpu_model.parameters(), dev_model.parameters()):
            grad = torch.randn(pc.shape, generator=g)
            pc.grad, pd.grad = grad.clone(), grad.to(dev)
        cpu_opt.step()
        dev_opt.step()
    diff = max(float((pc.detach() - pd.detach().cpu()).abs().max())
               for pc, pd in zip(cpu_model.parameters(), dev_model.parameters()))
    moved = max(float((pc.detach() - p0).abs().max()) for pc, p0 in zip(cpu_model.parameters(), init))
    fused = bool(dev_opt.defaults.get("fused"))
    ok = diff <= 1e-5 and moved > 1e-3 and (fused or dev.type != "cuda")
    return {"name": f"adamw fused={fused} on {dev.type} vs non-fused cpu, 5 steps", "ok": ok,
            "max_abs_param_diff": diff, "max_param_move": moved, "fused": fused}


def safetensors_check(dev: torch.device, tmp: Path) -> dict:
    """save_model of a model living on the device, load_model(map_location=device): same weights,
    same tied head, same logits; a torch.compile wrapper saves without its ``_orig_mod.`` prefix."""
    from model import CausalLM, ModelConfig, load_model, save_model
    cfg = ModelConfig.modern(2, 2, 64, 32, 300)
    torch.manual_seed(0)
    model = CausalLM(cfg).to(dev).eval()
    save_model(torch.compile(model), cfg, tmp / "rt")
    loaded, cfg2 = load_model(tmp / "rt", map_location=dev)
    loaded.eval()
    same = all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    on_dev = all(p.device.type == dev.type for p in loaded.parameters())
    tied = loaded.lm_head.weight.data_ptr() == loaded.transformer.wte.weight.data_ptr()
    x = torch.randint(0, cfg.vocab_size, (2, cfg.block_size), device=dev)
    with torch.no_grad():
        logit_diff = float((model(x)[0] - loaded(x)[0]).abs().max())
    ok = same and on_dev and tied and cfg2 == cfg and logit_diff <= 1e-5
    return {"name": f"safetensors round trip on {dev.type}", "ok": ok, "weights_equal": same, "on_device": on_dev,
            "tied_head": tied, "config_equal": cfg2 == cfg, "max_logit_diff": logit_diff}


def checks_section(dev: torch.device, smoke: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        items = parity_checks(dev, smoke) + [adamw_check(dev, smoke), safetensors_check(dev, Path(tmp))]
    return {"passed": sum(c["ok"] for c in items), "failed": sum(not c["ok"] for c in items), "items": items}
