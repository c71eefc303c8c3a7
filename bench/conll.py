"""Fine-tune gain on CoNLL-2003 NER: a small LM pretrained by the pipeline vs. the same model from scratch.

The pretrained model is ``bench/pretrained.py``'s small trunk, ``PRETRAIN`` (4 layers, 128 wide; the same corpus:
TinyStories slice + WikiText-2 valid/test + Tiny Shakespeare, never CoNLL; cached under data/work/_bench/,
built here if absent). The FINETUNE stage runs CoNLL-2003 (train: a sample of train.txt; validation: a
cut of train, for early stopping; test: dev.txt, scored with ``results.test_metrics``) with full, adapter
and LoRA fine-tuning from the pretrained weights and full fine-tuning from random init, for every seed.
Entity-level F1 (CoNLL definition: exact span and type) on dev is reported per run and as the median over
seeds.

Target: median pretrained dev F1 >= scratch + 3 points for full fine-tuning (``met``); the same check
for adapter and LoRA is reported per method (``met_by_method``). ``gain_bootstrap``: each gain's 95%
interval over 2,000 paired resamplings of dev's sentences (F1 from their summed chunk counts) and the share
of them reaching +3 (``bench.finetune_gain.bootstrap_gain``).

    .venv/bin/python bench/conll.py            # the default: a short check (small pretraining, 1 seed)
    .venv/bin/python bench/conll.py --full     # the target's run (~10 min on 2 CPU cores, shared pretraining)
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [str(REPO)] + [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict  # noqa: E402

from bench.pretrained import CACHE, DATASETS, PRETRAIN, QUICK_PRETRAIN, pretrained_model, say  # noqa: E402
from bench.finetune_gain import (METHODS, add_size_args, finetune, say_summary, summarize,  # noqa: E402
                                 summary_fields)
import torch  # noqa: E402

from pipeline.configtypes import build  # noqa: E402
from pipeline.finetune import FinetuneConfig  # noqa: E402
from pipeline.tasks import TasksConfig  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_size_args(ap, "the target's run: the small trunk (pretrained once, cached), 3 seeds, 2,000 sentences "
                  "(~10 min)")
    ap.add_argument("--seeds", type=int, default=None, help="fine-tuning seeds (default 3; quick 1)")
    ap.add_argument("--train-sentences", type=int, default=None, help="CoNLL train sample (default 2000)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: one per core)")
    args = ap.parse_args()
    args.quick = not args.full  # (--quick: the default, kept for old commands)
    if not (DATASETS / "conll2003").exists():
        sys.exit(f"{DATASETS / 'conll2003'} is absent: this benchmark needs ../shared/datasets")
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    recipe = QUICK_PRETRAIN if args.quick else PRETRAIN
    seeds = list(range(args.seeds if args.seeds else 1 if args.quick else 3))
    n_train = args.train_sentences or (500 if args.quick else 2000)
    say(f"conll bench: {'quick' if args.quick else 'full'}; seeds {seeds}; {n_train} train sentences; "
        f"threads {threads}; torch {torch.__version__}")
    root = pretrained_model(recipe, threads)
    t_pre = time.perf_counter() - t0

    conll = DATASETS / "conll2003"
    tasks = build(TasksConfig, {"tasks": [{
        "name": "conll", "kind": "tagging", "source": "files", "train": str(conll / "train.txt"),
        "test": str(conll / "dev.txt"), "token_column": 0, "tag_column": -1, "scheme": "BIO",
        "val_fraction": 0.05, "test_fraction": 0.0, "max_train": n_train, "max_eval": 1000}]})
    cfg = FinetuneConfig(methods=METHODS, seeds=seeds, baseline=True, epochs=args.epochs, max_len=96,
                         batch_size=32, lr=5e-4, head_lr=2e-3, peft_lr=3e-3, warmup_ratio=0.1, patience=2,
                         class_weights=False,
                         threads=threads)
    out = CACHE / f"conll-{int(time.time())}-{os.getpid()}"
    t1 = time.perf_counter()
    scored = finetune(root, tasks, cfg, out)
    t_ft = time.perf_counter() - t1
    for r in scored:
        t = r["test"]
        say(f"  {r['method']:>8} {r['init']:>10} s{r['seed']}: dev F1 {100 * t['f1']:.2f} "
            f"(P {100 * t['precision']:.1f} R {100 * t['recall']:.1f}; val F1 {100 * r['val']['f1']:.2f}, "
            f"best epoch {r['best_epoch']}, trainable {r['trainable_params']:,}/{r['total_params']:,}, "
            f"{r['seconds']:.0f} s)")
    summary = summarize(scored, "f1", 3.0)
    say_summary(summary, "dev F1", "F1 points")
    wall = time.perf_counter() - t0
    say(f"wall-clock: {wall:.0f} s (pretrain {t_pre:.0f} s, fine-tune {t_ft:.0f} s)")
    print(json.dumps({
        "bench": "conll", "mode": "quick" if args.quick else "full", "metric": "dev_entity_f1",
        **summary_fields(summary, measured=not args.quick),
        "baseline": {"full-scratch_median": round(summary["scratch"], 2)},
        "seeds": seeds, "train_sentences": n_train, "pretrain": recipe, "finetune": {
            k: v for k, v in asdict(cfg).items() if k in ("epochs", "max_len", "batch_size", "lr", "head_lr",
                                                          "peft_lr", "lora_r", "adapter_bottleneck")},
        "wall_clock_s": round(wall, 1), "pretrain_s": round(t_pre, 1), "finetune_s": round(t_ft, 1),
        "threads": threads}))


if __name__ == "__main__":
    main()
