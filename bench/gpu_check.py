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
import contextlib  # noqa: E402
import copy  # noqa: E402
import gc  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

import torch  # noqa: E402

PEAK = 989e12  # H100 SXM / H200 dense bf16, the brief's reference
TARGETS = {"tokens_per_s": 600_000, "mfu": 0.52}
OPTIONAL = ("numpy", "pyarrow", "sentencepiece", "safetensors", "matplotlib", "pytest", "yaml", "prefect",
            "mlflow", "datasketch")


class Check:
    """Figures, a log and a deadline; every section's result is saved as soon as it is recorded."""

    def __init__(self, out: Path, budget: float, smoke: bool) -> None:
        self.out, self.smoke = out, smoke
        self.deadline = time.monotonic() + budget
        self.result: dict = {"bench": "gpu_check", "smoke": smoke, "sections": {}}
        out.mkdir(parents=True, exist_ok=True)
        self.log_file = open(out / "gpu_check.log", "a")

    def log(self, msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        self.log_file.write(line + "\n")
        self.log_file.flush()

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def section(self, name: str, need: float, fn, *args) -> dict:
        """Run ``fn(*args)`` unless fewer than ``need`` seconds remain; record its dict or its error."""
        if self.left() < need:
            res = {"skipped": f"time budget: {self.left():.0f}s left, needs ~{need:.0f}s"}
        else:
            t0 = time.monotonic()
            self.log(f"== {name} (budget left {self.left():.0f}s)")
            try:
                res = fn(*args)
            except Exception as e:  # a failed section must not cost the others their turn
                res = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-3000:]}
            res["seconds"] = round(time.monotonic() - t0, 1)
            gc.collect()
            torch._dynamo.reset()  # compiled graphs hold on to the section's models
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        self.log(f"{name}: {json.dumps({k: v for k, v in res.items() if k != 'traceback'}, default=str)[:2000]}")
        self.result["sections"][name] = res
        self.save()
        return res

    def save(self) -> None:
        tmp = self.out / ".gpu_check.json.tmp"
        tmp.write_text(json.dumps(self.result, indent=1, default=str) + "\n")
        tmp.replace(self.out / "gpu_check.json")


# ------------------------------------------------------------------------------------------------ 1. env
def importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def env_section(dev: torch.device) -> dict:
    res = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "device": str(dev), "cpu_count": os.cpu_count(),
           "packages": {m: importable(m) for m in OPTIONAL}}
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        res.update(name=props.name, capability=f"{props.major}.{props.minor}", memory_gib=round(props.total_memory / 2**30, 1),
                   bf16=torch.cuda.is_bf16_supported(), sms=props.multi_processor_count)
        with contextlib.suppress(Exception):
            res["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,clocks.max.sm,power.limit",
                                                "--format=csv,noheader"], capture_output=True, text=True, timeout=20).stdout.strip()
    try:
        import model  # noqa: F401  (needs safetensors)
        res["model_imports"] = True
    except Exception as e:
        res["model_imports"] = f"{type(e).__name__}: {e}"
    return res


# ------------------------------------------------------------------------------------------------ 2. checks
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
    for recipe in ("modern", "nanogpt"):
        cfg = getattr(ModelConfig, recipe)(*shape)
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
        if not smoke and recipe == "modern":
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


# ------------------------------------------------------------------------------------------------ 3. throughput
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


# ------------------------------------------------------------------------------------------------ 4. e2e
def make_shards(folder: Path, smoke: bool) -> Path:
    """Random token shards in the tokenize stage's format (``pipeline.tokenize.shards``), written directly: no
    tokenizer, prefect, mlflow or matplotlib needed. Tokens follow a random sparse Markov chain (each id has 4
    possible successors), so the loss can fall from ln(V) towards ln(4)."""
    import numpy as np
    import pyarrow as pa

    from pipeline.tokenize.shards import (META_FILE, TOKEN_BYTES_FILE, DocBatch, shard_name, shard_schema,
                                          token_dtype, write_shard_file)
    V, specials = 512, {"pad": 0, "unk": 1, "bos": 2, "eos": 3}
    rng = np.random.default_rng(0)
    successors = rng.integers(len(specials), V, size=(V, 4))
    token_bytes = np.where(np.arange(V) < len(specials), 0, 1 + np.arange(V) % 4).astype(np.int32)
    dtype = token_dtype(V)
    n_docs = {"train": 40 if smoke else 400, "val": 8 if smoke else 40}
    for split, n in n_docs.items():
        docs = []
        for _ in range(n):
            ids = [int(rng.integers(len(specials), V))]
            for _ in range(int(rng.integers(100, 400))):
                ids.append(int(successors[ids[-1], rng.integers(0, 4)]))
            docs.append(np.array(ids + [specials["eos"]], dtype=dtype))
        lengths = np.array([len(d) for d in docs], dtype=np.int64)
        batch = DocBatch(np.concatenate(docs), lengths, pa.array([f"{split}:{i}" for i in range(n)]),
                         np.array([int(token_bytes[d].sum()) for d in docs], dtype=np.int64), np.zeros(n, dtype=np.int8))
        (folder / split).mkdir(parents=True, exist_ok=True)
        write_shard_file(folder / shard_name(split, 0), batch, shard_schema(dtype, split, "markov"))
    (folder / TOKEN_BYTES_FILE).parent.mkdir(parents=True, exist_ok=True)
    with open(folder / TOKEN_BYTES_FILE, "wb") as f:
        np.save(f, token_bytes)
    meta = {"vocab_size": V, "dtype": dtype.name, "special_ids": specials, "sentinel_ids": [],
            "all_special_ids": sorted(specials.values()), "eos_after_each_document": True,
            "note": "gpu_check: random Markov-chain tokens, no tokenizer"}
    (folder / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
    return folder


def pretrain_cli(chk: Check, shards: Path, out: Path, sets: list[str], timeout: float) -> tuple[int, dict]:
    cmd = [sys.executable, "-m", "pipeline.pretrain", "--shards", str(shards), "--out", str(out)]
    for s in sets:
        cmd += ["--set", s]
    chk.log("$ " + " ".join(cmd))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=max(10.0, timeout))
    tail = [ln for ln in p.stderr.splitlines() if ln.strip()][-15:]
    chk.log("stderr tail:\n" + "\n".join(tail))
    stats = {}
    with contextlib.suppress(ValueError, IndexError):
        stats = json.loads(p.stdout.strip().splitlines()[-1])
    if p.returncode != 0:
        stats["stderr_tail"] = tail
    return p.returncode, stats


def e2e_section(chk: Check, dev: torch.device, smoke: bool) -> dict:
    from model import load_model
    from pipeline.loader import TokenShards
    with tempfile.TemporaryDirectory() as tmp:
        shards = make_shards(Path(tmp) / "tokens", smoke)
        res: dict = {"train_tokens": TokenShards(shards, "train").n_tokens, "val_tokens": TokenShards(shards, "val").n_tokens}
        shape = ["model.n_layer=2", "model.n_head=2", "model.n_embd=64", "model.block_size=64"] if smoke else \
            ["model.n_layer=4", "model.n_head=4", "model.n_embd=256", "model.block_size=256"]
        steps, every = (20, 10) if smoke else (40, 20)
        sets = shape + [f"device={dev.type}", "dtype=bf16", f"compile={'false' if smoke else 'true'}",
                        f"batch_size={8 if smoke else 32}", f"eval_every={every}", "eval_batches=4",
                        f"checkpoint_every={every}", "log_every=5", "warmup_steps=5", "lr=3e-3"]
        out = Path(tmp) / "run"
        rc, st = pretrain_cli(chk, shards, out, sets + [f"max_steps={steps}"], chk.left() - 5)
        res["first"] = run_figures(out, rc, st, dev)
        res["ok"] = bool(rc == 0 and res["first"]["trained"] and st.get("steps") == steps
                         and str(st.get("device", "")).startswith(dev.type) and st.get("dtype") == "bf16"
                         and (dev.type != "cuda" or "mfu" in st))
        if (out / "model").is_dir():
            loaded, _ = load_model(out / "model", map_location=dev)
            res["first"]["model_loads_on"] = next(loaded.parameters()).device.type
            res["ok"] = res["ok"] and res["first"]["model_loads_on"] == dev.type
        # resume from the checkpoint for 10 more steps, unless it would cost micro-batch 64 its turn
        if res["ok"] and chk.left() > (20 if smoke else 170):
            rc2, st2 = pretrain_cli(chk, shards, out, sets + [f"max_steps={steps + 10}"], chk.left() - 5)
            res["resume"] = run_figures(out, rc2, st2, dev)
            res["ok"] = rc2 == 0 and st2.get("steps") == steps + 10 and res["resume"]["metrics_rows"] == steps + 10
    return res


def run_figures(out: Path, rc: int, st: dict, dev: torch.device) -> dict:
    """What a CLI run left: its printed stats, or (when it failed after training, e.g. on a missing optional
    package) the figures of its metrics log and whether the checkpoint and model were written."""
    path = out / "reports" / "metrics.jsonl"
    rows = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()] if path.exists() else []
    last_eval = next((r for r in reversed(rows) if "val_loss" in r), {})
    fig = {"rc": rc, "metrics_rows": len(rows), "checkpoint": (out / "checkpoint").is_dir(),
           "model": (out / "model").is_dir(), "loss_first_last": [rows[0]["train_loss"], rows[-1]["train_loss"]] if rows else None,
           "last_val_loss": last_eval.get("val_loss"), "last_val_bpb": last_eval.get("val_bpb"),
           "tokens_per_s": next((r["tokens_per_s"] for r in reversed(rows) if "tokens_per_s" in r), None),
           "mfu": next((r["mfu"] for r in reversed(rows) if "mfu" in r), None)}
    fig["trained"] = bool(rows and rows[-1]["train_loss"] < rows[0]["train_loss"] - 0.5 and fig["model"]
                          and math.isfinite(last_eval.get("val_bpb", math.nan)))
    fig.update({k: st[k] for k in ("steps", "device", "dtype", "val_loss", "val_bpb", "train_seconds", "stderr_tail") if k in st})
    return fig


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
