"""Hyperparameter selection for bench/sst2.py on the VALIDATION split only (a cut of SST-2 train).

Runs the FINETUNE stage on the bench's SST-2 task and pretrained model with the bench's recipe plus
``--set field=value`` overrides (values parsed as JSON, else kept as strings), and prints each run's
best validation accuracy and the median / mean over seeds per method. It never scores GLUE dev (the
bench's test split), so choosing a recipe here does not peek at the reported figure.

    .venv/bin/python bench/sst2_select.py --methods lora adapter --set peft_lr=0.01 --threads 1
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [str(REPO)] + [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

from bench.pretrained import CACHE, PRETRAIN, add_recipe_args, pretrained_model, recipe_from_args, say  # noqa: E402
from bench.finetune_gain import run_stage  # noqa: E402
from bench.sst2 import EPOCHS, FINETUNE, STYLES, TRAIN_EXAMPLES, TRAIN_ROWS, sst2_tasks  # noqa: E402
import torch  # noqa: E402

from pipeline.finetune import FinetuneConfig  # noqa: E402
from pipeline.finetune.results import list_runs  # noqa: E402


def parse_set(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, _, raw = item.partition("=")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--methods", nargs="+", default=["full", "adapter", "lora"])
    ap.add_argument("--baseline", action="store_true", help="also full fine-tuning from scratch")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--train-examples", type=int, default=TRAIN_EXAMPLES)
    ap.add_argument("--train-rows", choices=TRAIN_ROWS, default="phrases",
                    help="sample GLUE train's rows, or its whole sentences only (bench.sst2.sst2_tasks)")
    ap.add_argument("--style", choices=STYLES, default="ptb", help="SST-2's text style (bench.sst2.sst2_tasks)")
    ap.add_argument("--set", nargs="*", default=[], help="FinetuneConfig overrides, field=value")
    ap.add_argument("--threads", type=int, default=1)
    add_recipe_args(ap)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    overrides = parse_set(args.set)
    cfg = FinetuneConfig(**{**FINETUNE, "methods": args.methods, "seeds": list(range(args.seeds)),
                            "baseline": args.baseline, "epochs": args.epochs, "threads": args.threads,
                            **overrides})
    root = pretrained_model(recipe_from_args(PRETRAIN, args), args.threads)
    out = CACHE / f"select-{int(time.time())}-{os.getpid()}"
    t0 = time.perf_counter()
    run_stage(root, sst2_tasks(args.train_examples, args.train_rows, args.style), cfg, out)
    by: dict[str, list[float]] = {}
    for r in list_runs(out):
        curve = [round(100 * c["val_accuracy"], 1) for c in r["curves"]]
        say(f"  {r['method']:>8} {r['init']:>10} s{r['seed']}: val {100 * r['best']['accuracy']:.1f} "
            f"(epoch {r['best_epoch']}, curve {curve}, trainable {r['trainable_params']:,}, {r['seconds']:.0f} s)")
        by.setdefault(f"{r['method']}-{r['init']}", []).append(100 * r["best"]["accuracy"])
    print(json.dumps({"overrides": overrides, "style": args.style, "epochs": args.epochs,
                      "seconds": round(time.perf_counter() - t0),
                      "val_median": {k: round(statistics.median(v), 2) for k, v in by.items()},
                      "val_mean": {k: round(statistics.mean(v), 2) for k, v in by.items()}}), flush=True)


if __name__ == "__main__":
    main()
