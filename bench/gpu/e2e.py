"""The ``e2e`` section: ``python -m pipeline.pretrain`` (the plain entry point) on the device for a few steps on
small random shards written here in the tokenize stage's format, then resumed for a few more."""
from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from bench.gpu.record import Check

ROOT = Path(__file__).resolve().parents[2]  # the repo root: the CLI runs from it


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
    fig.update({k: st[k] for k in ("steps", "device", "dtype", "kept_val_loss", "kept_val_bpb", "train_seconds",
                                   "stderr_tail") if k in st})
    return fig
