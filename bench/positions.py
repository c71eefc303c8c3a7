"""T5's relative position bias (``pretrain.model.pos: relative``) against rotary positions (the default).

1. Speed: training steps (forward, backward, AdamW, clipping) of the same model with each kind of position,
   alternating one by one in this process (the order flips every step), for a decoder (causal LM) and a T5-style
   encoder-decoder (span corruption's shapes: a source window and a target a third as long). The bias makes
   SDPA take its masked path (no ``is_causal`` fast path). tokens/s from median step times; ``ratio``: the
   paired median of relative / rotary throughput.
2. Quality: the pipeline's trainer (``pipeline.pretrain.trainer.train``) on the benches' English corpus
   (``bench.pretrained.corpus_shards``: TinyStories slice, WikiText-2 valid/test, Tiny Shakespeare; 4,096
   pieces and 32 sentinels), the same seed, data order and recipe for both kinds: validation loss (and, for
   the encoder-decoder, ``encoder_gain``: how much the decoder's loss rises when given another window's source,
   i.e. whether it reads its encoder at all).

No issue sets a target for this option: the JSON line's ``met`` is null; it records what the option costs and
gives. Measured here (one thread): at 300 steps, relative / rotary throughput 0.978 (decoder) and 0.946
(encoder-decoder), validation loss 4.410 vs 4.257 (decoder) and 4.509 vs 4.565 (encoder-decoder); with ``--full``
(1,500 steps; 1,205 s of training for the four models), 0.971 and 0.939, 3.736 vs 3.722 and 4.096 vs 4.058, the
encoder-decoder's encoder gain 0.010 vs 0.001 (it barely reads its encoder either way at this size).

    .venv/bin/python bench/positions.py           # the default: ~5 min (300 training steps per model)
    .venv/bin/python bench/positions.py --full    # 1,500 steps per model (~25 min)
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # bench/tokenize.py would shadow the standard-library module
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from bench.pretrained import DATASETS, corpus_shards, say  # noqa: E402  (sets OMP_WAIT_POLICY before torch)
import torch  # noqa: E402

from model import CausalLM, ModelConfig, Seq2SeqLM, build_adamw  # noqa: E402
from pipeline.configtypes import build  # noqa: E402
from pipeline.pretrain.config import PretrainConfig  # noqa: E402

KINDS = ("rotary", "relative")
SHAPE = {"n_layer": 2, "n_head": 4, "n_embd": 128, "block_size": 128, "norm": "rmsnorm", "mlp": "relu2",
         "qk_norm": True}
ARCHS = {"decoder": {}, "encoder_decoder": {"n_dec_layer": 2}}
BATCH = 16


def speed(arch: str, steps: int, warmup: int = 3) -> dict:
    """Alternating training steps of the two kinds on random tokens; tokens/s per kind and the paired ratio."""
    sides = {}
    for kind in KINDS:
        torch.manual_seed(0)
        cfg = ModelConfig(arch=arch, vocab_size=4096, pos=kind, **SHAPE, **ARCHS[arch])
        model = (CausalLM if arch == "decoder" else Seq2SeqLM)(cfg).train()
        sides[kind] = (model, build_adamw(model, lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1))
    gen = torch.Generator().manual_seed(0)
    T, S = SHAPE["block_size"], SHAPE["block_size"] // 3

    def step(kind: str) -> float:
        model, opt = sides[kind]
        x = torch.randint(0, 4096, (BATCH, T), generator=gen)
        t0 = time.perf_counter()
        if arch == "decoder":
            _, loss = model(x, x)
        else:
            tgt = x[:, :S]
            _, loss = model(x, tgt, tgt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    times: dict[str, list[float]] = {k: [] for k in KINDS}
    for i in range(warmup + steps):
        for kind in KINDS if i % 2 == 0 else KINDS[::-1]:
            dt = step(kind)
            if i >= warmup:
                times[kind].append(dt)
    tokens = BATCH * (T if arch == "decoder" else T + S)
    tps = {k: tokens / statistics.median(v) for k, v in times.items()}
    ratio = statistics.median(a / b for a, b in zip(times["rotary"], times["relative"]))
    say(f"speed {arch}: rotary {tps['rotary']:,.0f} tok/s, relative {tps['relative']:,.0f} tok/s "
        f"(paired ratio relative/rotary {ratio:.3f}, {steps} steps each)")
    return {"tokens_per_s": {k: round(v) for k, v in tps.items()}, "ratio": round(ratio, 3)}


def quality(arch: str, shards: Path, steps: int, threads: int, work: Path) -> dict:
    """Each kind trained by the pipeline's trainer on the same data with the same seed: its final figures."""
    from pipeline.pretrain.trainer import train
    out = {}
    for kind in KINDS:
        cfg = build(PretrainConfig, {"model": {"arch": arch, "pos": kind, **SHAPE, **ARCHS[arch]},
                                     "max_steps": steps, "batch_size": BATCH, "lr": 3e-3, "warmup_steps": 30,
                                     "eval_every": steps, "eval_batches": 16, "checkpoint_every": steps,
                                     "threads": threads})
        t0 = time.perf_counter()
        st = train(cfg, shards, work / f"{arch}-{kind}")
        row = {"val_loss": round(st["kept_val_loss"], 4), "seconds": round(time.perf_counter() - t0, 1)}
        if "kept_val_encoder_gain" in st:
            row["encoder_gain"] = round(st["kept_val_encoder_gain"], 4)
        if "kept_val_accuracy" in st:
            row["accuracy"] = round(st["kept_val_accuracy"], 4)
        out[kind] = row
        say(f"quality {arch} {kind}: {row}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="1,500 training steps per model instead of 300")
    ap.add_argument("--threads", type=int, default=1, choices=(1, 2))
    ap.add_argument("--speed-steps", type=int, default=20, help="measured steps per kind in the speed part")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    steps = 1500 if args.full else 300
    say(f"torch {torch.__version__}, threads {args.threads}, load average {os.getloadavg()[0]:.2f}; "
        f"datasets {DATASETS}")
    res = {arch: {"speed": speed(arch, args.speed_steps)} for arch in ARCHS}
    shards = corpus_shards("cased", 4096, args.threads, sentinels=32)
    with tempfile.TemporaryDirectory(prefix="positions-") as tmp:
        for arch in ARCHS:
            res[arch]["quality"] = quality(arch, shards, steps, args.threads, Path(tmp))
    print(json.dumps({"bench": "positions", "mode": "full" if args.full else "quick", "steps": steps,
                      "baseline": "rotary", **res, "target": None, "met": None}))


if __name__ == "__main__":
    main()
