"""The ``throughput`` sections: GPT-2 small training steps (bf16 autocast, torch.compile, fused AdamW), our model
vs nanoGPT's (``bench/nanogpt_ref.py``) through the same step function, in alternating rounds; tokens/s and MFU."""
from __future__ import annotations

import time

import torch

from bench.gpu.checks import autocast

PEAK = 989e12  # H100 SXM / H200 dense bf16, the brief's reference
TARGETS = {"tokens_per_s": 600_000, "mfu": 0.52}


def gpt2_shape(smoke: bool) -> dict:
    if smoke:
        return dict(n_layer=2, n_head=2, n_embd=64, block_size=64, vocab_size=512)
    return dict(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50304)


def build_pair(dev: torch.device, shape: dict) -> dict:
    """Our model and nanoGPT's, same shape and init seed, each with its own fused AdamW."""
    from bench import nanogpt_ref
    from model import CausalLM, ModelConfig, build_adamw
    torch.manual_seed(0)
    ours = CausalLM(ModelConfig.nanogpt(**shape)).to(dev).train()
    torch.manual_seed(0)
    nano = nanogpt_ref.GPT(nanogpt_ref.GPTConfig(**shape, dropout=0.0, bias=False)).to(dev).train()
    return {"ours": (ours, build_adamw(ours, 6e-4, (0.9, 0.95), 0.1)),
            "nanogpt": (nano, nano.configure_optimizers(0.1, 6e-4, (0.9, 0.95), dev.type))}


class Stepper:
    """The train step both models get: bf16 autocast, (accumulated) backward, clip 1.0, AdamW step."""

    def __init__(self, model, opt, dev: torch.device, dtype: str, compile_: bool) -> None:
        self.model, self.opt, self.dev, self.dtype = model, opt, dev, dtype
        self.run = torch.compile(model, dynamic=False) if compile_ else model
        self.params = [p for p in model.parameters() if p.requires_grad]

    def step(self, micro_batches) -> torch.Tensor:
        accum = len(micro_batches)
        for x, y in micro_batches:
            with autocast(self.dev, self.dtype):
                _, loss = self.run(x, y)
            (loss / accum).backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0, foreach=True)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return loss.detach()


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def timed_steps(stepper: Stepper, batches, n: int, accum: int) -> float:
    sync(stepper.dev)
    t0 = time.perf_counter()
    for i in range(n):
        stepper.step([batches[(i * accum + j) % len(batches)] for j in range(accum)])
    sync(stepper.dev)
    return time.perf_counter() - t0


def throughput_section(dev: torch.device, smoke: bool, micro: int, batches_of: tuple[int, ...], rounds: int,
                       compile_: bool, deadline: float) -> dict:
    """Rounds after the first that would start past ``deadline`` (time.monotonic) are dropped."""
    from model import flops_per_token, ModelConfig
    shape = gpt2_shape(smoke)
    T, V = shape["block_size"], shape["vocab_size"]
    fpt = flops_per_token(ModelConfig.nanogpt(**shape))
    g = torch.Generator().manual_seed(0)
    data = [torch.randint(0, min(V, 50257), (micro, T + 1), generator=g).to(dev) for _ in range(4)]
    batches = [(d[:, :-1].contiguous(), d[:, 1:].contiguous()) for d in data]
    dtype = "bf16" if dev.type == "cuda" else "fp32"  # CPU bf16 autocast is slow without AMX (smoke only)
    steppers = {name: Stepper(m, o, dev, dtype, compile_) for name, (m, o) in build_pair(dev, shape).items()}
    res: dict = {"micro_batch": micro, "block_size": T, "flops_per_token": fpt, "compile": compile_, "dtype": dtype,
                 "peak_flops": PEAK}
    for name, st in steppers.items():  # compile + warm-up, excluded from the figures
        t0 = time.perf_counter()
        for _ in range(10 if smoke else 3):
            st.step([batches[0]])
        sync(dev)
        res[f"{name}_compile_warmup_s"] = round(time.perf_counter() - t0, 1)
    for batch in batches_of:
        accum = batch // micro
        tokens = batch * T
        n = max(2, (2 if smoke else 20) * 64 // batch)  # ~2 s a round on an H100-class GPU
        times: dict[str, list[float]] = {name: [] for name in steppers}
        for r in range(rounds):
            if r and time.monotonic() > deadline - 10:
                res[f"truncated_b{batch}"] = f"{r} of {rounds} rounds (time budget)"
                break
            for name in (list(steppers) if r % 2 == 0 else list(steppers)[::-1]):
                times[name].append(timed_steps(steppers[name], batches, n, accum) / n)
        for name, ts in times.items():
            med = sorted(ts)[len(ts) // 2]
            tps = tokens / med
            res[f"{name}_b{batch}"] = {"batch": batch, "accum": accum, "steps_per_round": n, "ms_per_step": round(med * 1e3, 2),
                                       "tokens_per_s": round(tps), "mfu": round(tps * fpt / PEAK, 4),
                                       "round_ms": [round(t * 1e3, 2) for t in ts]}
        res[f"ratio_b{batch}"] = round(res[f"ours_b{batch}"]["tokens_per_s"] / res[f"nanogpt_b{batch}"]["tokens_per_s"], 3)
    if dev.type == "cuda":
        res["max_memory_gib"] = round(torch.cuda.max_memory_allocated(dev) / 2**30, 1)
        torch.cuda.reset_peak_memory_stats(dev)
    return res
