"""The one prepared check for a session that gets a CUDA GPU (an H200) for a few minutes.

Sections, run in this order, each on a time budget (a section that would not fit is skipped with a reason),
each written to ``$OUT/gpu_check.json`` as soon as it ends, so a killed run keeps what it measured:

1. ``env``: torch/CUDA versions, the device, which optional packages import (the GPU box may lack some).
2. ``checks``: our model on the device vs fp32 on the CPU: forward/backward in fp32 (TF32 off) and in bf16
   autocast, within tolerances; torch.compile vs eager; the fused AdamW kernel on the device vs a
   non-fused CPU AdamW fed identical gradients; safetensors save/load round trip on the device.
3. ``throughput``: GPT-2 small (12L/12H/768, vocab 50304, context 1024) training steps with bf16 autocast,
   torch.compile and fused AdamW, our ``CausalLM(ModelConfig.nanogpt(...))`` and nanoGPT's model
   (``bench/nanogpt_ref.py``) through the same step function, alternating rounds, compile and warm-up
   excluded: micro-batch 16 at batch 16 and 64 (4 accumulation steps), then micro-batch 64 if time remains.
   tokens/s and MFU against 989e12 (H100/H200 dense bf16); targets >= 600k tokens/s and >= 52% MFU.
4. ``e2e``: ``python -m pipeline.pretrain`` (the plain entry point) on CUDA with bf16 + compile for a few
   steps on small shards made here by the tokenize stage, then resumed for a few more.
5. ``pytest`` on tests/model and tests/pretrain when pytest imports and time remains.

    bash bench/gpu_check.sh                       # on the GPU box (figures in $OUT)
    python bench/gpu_check.py --cpu-smoke --out /tmp/x   # here: tiny sizes on the CPU, no compile
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # bench/ first on sys.path would shadow stdlib `tokenize`
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402

import torch  # noqa: E402

from bench.gpu.checks import checks_section  # noqa: E402
from bench.gpu.e2e import e2e_section  # noqa: E402
from bench.gpu.env import env_section, importable  # noqa: E402
from bench.gpu.record import Check  # noqa: E402
from bench.gpu.throughput import PEAK, TARGETS, throughput_section  # noqa: E402


# ------------------------------------------------------------------------------------------------ 5. pytest
def pytest_section(chk: Check) -> dict:
    cmd = [sys.executable, "-m", "pytest", "tests/model", "tests/pretrain", "-q", "-x", "-p", "no:cacheprovider"]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=max(10.0, chk.left() - 5))
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    chk.log("pytest tail:\n" + "\n".join(lines[-15:]))
    return {"rc": p.returncode, "summary": lines[-1] if lines else p.stderr[-500:], "ok": p.returncode == 0}


# ------------------------------------------------------------------------------------------------ main
def summary(chk: Check, dev: torch.device) -> dict:
    s = chk.result["sections"]
    best: dict = {}
    by_batch: dict = {}  # "ours b64 (16x4)": tokens/s
    for key in ("throughput_mb16", "throughput_mb64"):
        for k, v in s.get(key, {}).items():
            if isinstance(v, dict) and "tokens_per_s" in v:
                name = k.split("_b")[0]
                by_batch[f"{name} b{v['batch']} ({v['batch'] // v['accum']}x{v['accum']})"] = [v["tokens_per_s"], v["mfu"]]
                if v["tokens_per_s"] > best.get(name, {}).get("tokens_per_s", 0):
                    best[name] = {**v, "section": key}
    checks = s.get("checks", {})
    ours = best.get("ours", {})
    line = {
        "bench": "gpu_check", "device": s.get("env", {}).get("name", str(dev)), "smoke": chk.smoke,
        "checks_passed": checks.get("passed"), "checks_failed": checks.get("failed"),
        "tokens_per_s": ours.get("tokens_per_s"), "mfu": ours.get("mfu"),
        "baseline_tokens_per_s": best.get("nanogpt", {}).get("tokens_per_s"), "baseline_mfu": best.get("nanogpt", {}).get("mfu"),
        "best_config": {k: ours.get(k) for k in ("batch", "accum", "section")} if ours else None,
        "tokens_per_s_mfu": by_batch,
        "e2e_ok": s.get("e2e", {}).get("ok"), "pytest_ok": s.get("pytest", {}).get("ok"),
        "targets": {**TARGETS, "checks": "all pass", "e2e": "ok", "peak_flops": PEAK},
    }
    line["met"] = bool(not chk.smoke and checks.get("failed") == 0 and line["e2e_ok"]
                       and (ours.get("tokens_per_s") or 0) >= TARGETS["tokens_per_s"] and (ours.get("mfu") or 0) >= TARGETS["mfu"])
    return line


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU, no compile (checks the script)")
    ap.add_argument("--out", type=Path, default=Path(os.environ["OUT"]) if os.environ.get("OUT") else None)
    ap.add_argument("--budget", type=float, default=420.0, help="seconds for all sections (default 420)")
    ap.add_argument("--no-pytest", action="store_true")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="gpu_check-"))
    smoke = args.cpu_smoke
    if not smoke and not torch.cuda.is_available():
        print("no CUDA device: run with --cpu-smoke to check the script on the CPU", file=sys.stderr)
        return 2
    dev = torch.device("cpu" if smoke else "cuda")
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    else:
        torch.set_num_threads(1)  # a shared CPU: OpenMP threads spin-wait on busy cores
    chk = Check(out, args.budget, smoke)
    chk.log(f"gpu_check: out {out}, budget {args.budget:.0f}s, smoke {smoke}")
    env = chk.section("env", 0, env_section, dev)
    if env.get("model_imports") is not True:
        chk.log("the model package does not import: the other sections cannot run (see env.model_imports)")
    else:
        mb_small, mb_big = (4, 8) if smoke else (16, 64)
        chk.section("checks", 15 if smoke else 60, checks_section, dev, smoke)
        chk.section("throughput_mb16", 20 if smoke else 170, throughput_section, dev, smoke, mb_small,
                    (mb_small, 4 * mb_small), 3, not smoke, chk.deadline)
        chk.section("e2e", 20 if smoke else 100, e2e_section, chk, dev, smoke)
        chk.section("throughput_mb64", 20 if smoke else 120, throughput_section, dev, smoke, mb_big, (mb_big,), 3,
                    not smoke, chk.deadline)
        if not args.no_pytest and importable("pytest"):
            chk.section("pytest", 60, pytest_section, chk)
    line = summary(chk, dev)
    chk.result["summary"] = line
    chk.save()
    print(json.dumps(line, default=str), flush=True)
    chk.log_file.write(json.dumps(line, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
