"""Training-step throughput of lmforge's CausalLM vs nanoGPT, side by side in one process.

Both run fp32, eager (no compile), the same threads, batches, lr, betas, weight decay 0.1 and grad
clip 1.0. Steps alternate one by one (the order flips every round), so load from other processes
hits both; warm-up steps are excluded. tokens/s come from each side's median step time; `ratio` is
the median over rounds of the paired ratio (nanoGPT step time / our step time in the same round),
which is robust to the machine's load drifting during the run (this box is shared).

Ours: `CausalLM(ModelConfig.nanogpt(...))`, `model.build_adamw` (fused CPU AdamW kernel), foreach
grad-norm clipping. Baseline: `bench/nanogpt_ref.py` (nanoGPT's model and train.py step; its
`configure_optimizers` asks for fused AdamW only on CUDA, so on CPU it gets the default).

    .venv/bin/python bench/train_speed.py [--only a] [--steps N] [--threads T]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, Python puts bench/ first on sys.path, where a sibling script can shadow a
# standard-library module (bench/tokenize.py shadows `tokenize`, which torch imports). Import
# from the repository root instead.
ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import argparse
import json
import os
import statistics
import time

import torch

from bench import nanogpt_ref  # noqa: E402
from model import CausalLM, ModelConfig, build_adamw, flops_per_token, param_count  # noqa: E402

CONFIGS = {
    # name: shape, batch, optimiser settings, warm-up steps, measured steps (= rounds)
    "a": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, vocab_size=256, batch=12,
              lr=1e-3, betas=(0.9, 0.99), warmup=30, steps=100),
    "b": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, vocab_size=256, batch=12,
              lr=1e-3, betas=(0.9, 0.99), warmup=3, steps=12),
    "c": dict(n_layer=12, n_head=12, n_embd=768, block_size=256, vocab_size=50304, batch=4,
              lr=6e-4, betas=(0.9, 0.95), warmup=2, steps=3),
}
SHAPE_KEYS = ("n_layer", "n_head", "n_embd", "block_size", "vocab_size")


def free_cores() -> int:
    """Threads for a fair run on a shared box: the cores not already busy (1-minute load average).
    OpenMP threads spin-wait, so one thread more than the free cores can make a step 10x slower."""
    cores = os.cpu_count() or 1
    return max(1, min(cores, round(cores - os.getloadavg()[0])))


class Runner:
    """One model, its optimizer and step function; records per-step seconds after warm-up."""

    def __init__(self, name: str, model, step_fn, batches) -> None:
        self.name, self.model, self.step_fn, self.batches = name, model, step_fn, batches
        self.times: list[float] = []
        self.losses: list[float] = []
        self.i = 0

    def run(self, n: int, record: bool) -> None:
        for _ in range(n):
            x, y = self.batches[self.i % len(self.batches)]
            self.i += 1
            t0 = time.perf_counter()
            loss = self.step_fn(x, y)
            dt = time.perf_counter() - t0
            self.losses.append(loss)
            if record:
                self.times.append(dt)


def make_ours(spec: dict, batches) -> Runner:
    cfg = ModelConfig.nanogpt(**{k: spec[k] for k in SHAPE_KEYS})
    torch.manual_seed(0)
    model = CausalLM(cfg).train()
    opt = build_adamw(model, lr=spec["lr"], betas=spec["betas"], weight_decay=0.1)
    params = [p for p in model.parameters() if p.requires_grad]

    def step(x, y) -> float:
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    return Runner("ours", model, step, batches)


def make_nanogpt(spec: dict, batches) -> Runner:
    gcfg = nanogpt_ref.GPTConfig(**{k: spec[k] for k in SHAPE_KEYS}, dropout=0.0, bias=False)
    torch.manual_seed(0)
    model = nanogpt_ref.GPT(gcfg).train()
    opt = model.configure_optimizers(0.1, spec["lr"], spec["betas"], "cpu")
    scaler = torch.amp.GradScaler("cuda", enabled=False)  # train.py's scaler, disabled off fp16/CUDA

    def step(x, y) -> float:
        return nanogpt_ref.train_step(model, opt, scaler, x, y, grad_clip=1.0)

    return Runner("nanogpt", model, step, batches)


def bench_config(name: str, spec: dict, steps: int | None) -> dict:
    steps = steps or spec["steps"]
    gen = torch.Generator().manual_seed(1234)
    B, T, V = spec["batch"], spec["block_size"], spec["vocab_size"]
    batches = []
    for _ in range(8):
        data = torch.randint(0, min(V, 50257), (B, T + 1), generator=gen)
        batches.append((data[:, :-1].contiguous(), data[:, 1:].contiguous()))
    ours, theirs = make_ours(spec, batches), make_nanogpt(spec, batches)
    n_ours, n_theirs = param_count(ours.model), theirs.model.get_num_params()
    assert n_ours == n_theirs, f"parameter counts differ: {n_ours=} {n_theirs=}"
    print(f"[{name}] {spec['n_layer']}L/{spec['n_head']}H/{spec['n_embd']} T={T} B={B} V={V}: "
          f"{n_ours / 1e6:.2f}M params (non-embedding, nanoGPT count) in both models")
    ours.run(spec["warmup"], record=False)
    theirs.run(spec["warmup"], record=False)
    for rnd in range(steps):
        for runner in (ours, theirs) if rnd % 2 == 0 else (theirs, ours):
            runner.run(1, record=True)
    tokens = B * T
    cfg = ModelConfig.nanogpt(**{k: spec[k] for k in SHAPE_KEYS})
    fpt = flops_per_token(cfg)
    result = {}
    for runner in (ours, theirs):
        med = statistics.median(runner.times)
        tps = tokens / med
        result[runner.name] = tps
        print(f"[{name}] {runner.name:8s} median {med * 1e3:9.1f} ms  min {min(runner.times) * 1e3:9.1f} ms  "
              f"{tps:10.0f} tok/s  {fpt * tps / 1e9:6.1f} GFLOP/s  loss {runner.losses[0]:.3f} -> {runner.losses[-1]:.3f}")
    result["ratio"] = statistics.median(t / o for o, t in zip(ours.times, theirs.times))
    print(f"[{name}] speed ratio ours/nanogpt: paired median {result['ratio']:.3f}, "
          f"ratio of medians {result['ours'] / result['nanogpt']:.3f}")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=sorted(CONFIGS), action="append", help="run just this config (repeatable)")
    ap.add_argument("--steps", type=int, default=None, help="measured steps per model (default per config)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads for both (default: free cores)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads or free_cores())
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.2f} (before)")
    names = args.only or sorted(CONFIGS)
    results = {name: bench_config(name, CONFIGS[name], args.steps) for name in names}
    print(f"load average {os.getloadavg()[0]:.2f} (after)")
    ratios = {n: round(r["ratio"], 3) for n, r in results.items()}
    print(json.dumps({
        "bench": "train_speed",
        "tokens_per_s": {n: round(r["ours"], 1) for n, r in results.items()},
        "baseline_tokens_per_s": {n: round(r["nanogpt"], 1) for n, r in results.items()},
        "ratio": ratios,
        "target_ratio": 1.0,
        "met": all(r >= 1.0 for r in ratios.values()),
    }))


if __name__ == "__main__":
    main()
