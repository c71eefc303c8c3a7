"""Masked-LM training throughput: sparse prediction (head only at masked positions) vs the dense
head over every position, same model shape and weights, same batches, 15 % masking.

Both sides run forward + backward + AdamW (the project's `build_adamw`) + grad clip 1.0, fp32,
eager. Steps alternate one by one (order flipping every round); warm-up is excluded. tokens/s
come from median step times; `speedup` is the median over rounds of the paired ratio.

    .venv/bin/python bench/mlm_speed.py [--steps N] [--batch B] [--threads T]
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

from model import MaskedLM, ModelConfig, build_adamw, param_count  # noqa: E402

MASK_RATE = 0.15


def free_cores() -> int:
    """Threads for a fair run on a shared box: the cores not already busy (1-minute load average).
    OpenMP threads spin-wait, so one thread more than the free cores can make a step 10x slower."""
    cores = os.cpu_count() or 1
    return max(1, min(cores, round(cores - os.getloadavg()[0])))


def make_batches(cfg: ModelConfig, batch: int, n: int, mask_id: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Random token rows; 15 % of positions become [MASK] inputs with their token as label."""
    gen = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        tokens = torch.randint(0, cfg.vocab_size - 1, (batch, cfg.block_size), generator=gen)
        masked = torch.rand(tokens.shape, generator=gen) < MASK_RATE
        labels = torch.where(masked, tokens, torch.full_like(tokens, -100))
        out.append((torch.where(masked, torch.full_like(tokens, mask_id), tokens), labels))
    return out


def make_step(cfg: ModelConfig, predict_all: bool):
    torch.manual_seed(0)  # identical initial weights on both sides
    model = MaskedLM(cfg).train()
    opt = build_adamw(model, lr=1e-3, betas=(0.9, 0.98), weight_decay=0.01)
    params = list(model.parameters())

    def step(idx: torch.Tensor, labels: torch.Tensor) -> float:
        _, loss = model(idx, labels, predict_all=predict_all)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    return model, step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20, help="measured steps per side")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=None, help="default: free cores")
    args = ap.parse_args()
    torch.set_num_threads(args.threads or free_cores())
    cfg = ModelConfig.from_name("bert_mini")  # 4L/4H/256, T=128, vocab 8192
    batches = make_batches(cfg, args.batch, 8, mask_id=cfg.vocab_size - 1)
    sides = {"sparse": make_step(cfg, predict_all=False), "dense": make_step(cfg, predict_all=True)}
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}")
    print(f"encoder {cfg.n_layer}L/{cfg.n_head}H/{cfg.n_embd} T={cfg.block_size} vocab={cfg.vocab_size} "
          f"batch={args.batch}, {param_count(sides['sparse'][0]) / 1e6:.2f}M params, {MASK_RATE:.0%} masked")
    times: dict[str, list[float]] = {k: [] for k in sides}
    losses: dict[str, list[float]] = {k: [] for k in sides}
    for i in range(args.warmup + args.steps):
        order = ("sparse", "dense") if i % 2 == 0 else ("dense", "sparse")
        for name in order:
            idx, labels = batches[i % len(batches)]
            t0 = time.perf_counter()
            losses[name].append(sides[name][1](idx, labels))
            if i >= args.warmup:
                times[name].append(time.perf_counter() - t0)
    tokens = args.batch * cfg.block_size
    tps = {k: tokens / statistics.median(v) for k, v in times.items()}
    for k in sides:
        print(f"{k:6s} median {statistics.median(times[k]) * 1e3:8.1f} ms  min {min(times[k]) * 1e3:8.1f} ms  "
              f"{tps[k]:9.0f} tok/s  loss {losses[k][0]:.4f} -> {losses[k][-1]:.4f}")
    # Same weights, same batches, same loss definition: the two runs must train identically.
    drift = max(abs(a - b) for a, b in zip(losses["sparse"], losses["dense"]))
    print(f"max |loss_sparse - loss_dense| over {len(losses['sparse'])} steps: {drift:.2e}")
    speedup = statistics.median(d / s for s, d in zip(times["sparse"], times["dense"]))
    print(f"speedup sparse/dense: paired median {speedup:.3f}, ratio of medians {tps['sparse'] / tps['dense']:.3f}")
    print(json.dumps({
        "bench": "mlm_speed",
        "tokens_per_s": round(tps["sparse"], 1),
        "baseline_tokens_per_s": round(tps["dense"], 1),
        "speedup": round(speedup, 3),
        "target_speedup": 1.15,
        "met": speedup >= 1.15,
    }))


if __name__ == "__main__":
    main()
