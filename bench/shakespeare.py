"""Validation bits per byte on tinyshakespeare in a fixed wall-clock budget: our pipeline vs nanoGPT's CPU recipe.

Data: nanoGPT's shakespeare_char split, the first 90% of the characters to train, the last 10% to validate.

Baseline: nanoGPT's README CPU recipe (char vocab of the text's 65 characters, 4L/4H/128, block 64, batch 12,
2000 iterations, lr 1e-3 cosine to 1e-4 over 2000 with 100 warm-up, beta2 0.99, weight decay 0.1, clip 1,
no dropout), run with ``bench/nanogpt_ref.py`` (nanoGPT's model and train.py step; batches drawn as its
``get_batch`` does). Its wall-clock W covers the char encoding, the training steps and one evaluation of the
whole val split on non-overlapping windows (its periodic 20-batch estimates are left out: a leaner baseline).
Bits per byte = nats per char / ln 2: the text is ASCII, one byte per character (checked).

Ours: the tokenize stage trains a sentencepiece model on the train split (documents of a few dozen lines cut
at line boundaries, so their concatenation is the text) and encodes it; the val text is encoded with that
tokenizer into a second output whose shards become the ``val/`` split; ``pipeline.pretrain.trainer.train``
runs our model family and evaluates the whole val stream (lm-eval bits per byte). Its budget is W: a
calibration times a few steps of both recipes under the same load and sets ``max_steps`` so that tokenizer,
training and evaluation fit in W (with a safety margin).

The two runs are interleaved in rounds (our trainer stops after its share of steps and resumes exactly from
its checkpoint; the order flips every round), so load from other processes on this shared box hits both.
Each side's seconds are the sum of its own rounds. ``--dev`` tunes honestly: it trains on the first 90% of
the train split and validates on the rest, never reading the val split.

    .venv/bin/python bench/shakespeare.py [--quick] [--threads 1] [--dev] [--vocab 1024] [--set lr=3e-3 ...]
"""
from __future__ import annotations

import sys
from pathlib import Path

# bench/tokenize.py would shadow the standard-library module: import from the repository root instead.
ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import torch  # noqa: E402

from bench.nanogpt_char import NanoRun  # noqa: E402
from pipeline.configtypes import build  # noqa: E402
from pipeline.overrides import apply_override  # noqa: E402
from pipeline.loader import TokenShards  # noqa: E402
from pipeline.pretrain.config import PretrainConfig  # noqa: E402

DATASETS = Path(os.environ.get("LMFORGE_DATASETS", ROOT.parent / "shared" / "datasets"))
TEXT = DATASETS / "tinyshakespeare" / "input.txt"

# nanoGPT README, "I only have a macbook": train_shakespeare_char.py with these overrides.
NANO = dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, max_iters=2000, lr_decay_iters=2000,
            learning_rate=1e-3, min_lr=1e-4, warmup_iters=100, beta1=0.9, beta2=0.99, weight_decay=0.1,
            grad_clip=1.0, seed=1337)

# Our recipe, chosen with --dev (train on 90% of the train split, validate on the rest) at the same budget:
# BPE (trains in ~0.5 s where unigram takes ~10 s, and packs a few % more bytes per token); vocab 1024 (512
# worse, 1536/2048 no better); in a ~2-minute CPU budget the model is compute-bound, so 2 layers with ~3x the
# steps beat 3-6 layers or wider ones; lr 3e-3 (2e-3 same, 4e-3 and 6e-3 worse); dropout 0.1 worse.
OURS_TOKENIZER = dict(model_type="bpe", vocab_size=1024, sentinels=0, lines_per_doc=64)
OURS = {
    "model": {"n_layer": 2, "n_head": 4, "n_embd": 128, "block_size": 128, "norm": "rmsnorm", "mlp": "relu2",
              "pos": "rotary", "qk_norm": True},
    "batch_size": 8, "lr": 3e-3, "min_lr_ratio": 0.1, "warmup_steps": 50, "schedule": "wsd", "decay_frac": 0.3,
    "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.99, "grad_clip": 1.0, "seed": 1337, "device": "cpu",
    "dtype": "fp32", "compile": False,
}
SAFETY = 0.88  # share of W our calibrated step count plans to use: on a shared box the ratio drifts ~10% in a run


# ------------------------------------------------------------------------------------------------ data
def load_text(dev: bool) -> tuple[str, str]:
    """nanoGPT's split (first 90% / last 10% of the characters); ``dev`` splits the train part again."""
    if not TEXT.exists():
        sys.exit(f"{TEXT} is absent: set LMFORGE_DATASETS to the folder holding tinyshakespeare/input.txt")
    text = TEXT.read_text(encoding="utf-8")
    cut = int(len(text) * 0.9)
    train, val = text[:cut], text[cut:]
    if dev:
        cut = int(len(train) * 0.9)
        train, val = train[:cut], train[cut:]
    return train, val


def line_docs(text: str, lines_per_doc: int) -> list[str]:
    """Documents of ``lines_per_doc`` lines, cut after newlines: their concatenation is ``text``."""
    lines = text.splitlines(keepends=True)
    docs = ["".join(lines[i:i + lines_per_doc]) for i in range(0, len(lines), lines_per_doc)]
    assert "".join(docs) == text
    return docs


def tokenize(work: Path, name: str, docs: list[str], options: dict) -> Path:
    """Run the tokenize stage on ``docs`` (every one to train: val_fraction 0); return its output folder."""
    from pipeline import documents
    from pipeline.stage import StageContext
    from pipeline.store import Workspace
    from pipeline.tokenize import TokenizeConfig, run

    ws = Workspace(work / "work", f"docs-{name}", "bench")
    folder = ws.open(fresh=True)
    rows = [{"doc_id": f"{name}:{i}", "text": t, "source": "tinyshakespeare", "meta": "{}"} for i, t in enumerate(docs)]
    (folder / documents.DOCS_DIR).mkdir(parents=True, exist_ok=True)
    documents.write_table(documents.docs_table(rows), folder / documents.shard_name(0))
    manifest = ws.publish("1", {}, {}, {}, None, 0.0)
    cfg = build(TokenizeConfig, {**options, "val_fraction": 0.0})
    out = work / f"tokens-{name}"
    run(cfg, StageContext(name="tokenize", key=name, out=out, inputs={"docs": manifest}))
    return out


def token_data(work: Path, train_text: str, val_text: str, tok: dict) -> tuple[Path, dict]:
    """Train shards + the val text encoded with the same tokenizer as the ``val/`` split of one folder."""
    opts = {k: v for k, v in tok.items() if k != "lines_per_doc"}
    train_out = tokenize(work, "train", line_docs(train_text, tok["lines_per_doc"]), opts)
    model = train_out / "tokenizer" / "tokenizer.model"
    val_out = tokenize(work, "val", [val_text], {"tokenizer_path": str(model), "sentinels": opts["sentinels"]})
    folder = work / "tokens"
    shutil.copytree(train_out, folder)
    (folder / "val").mkdir(exist_ok=True)
    for part in sorted((val_out / "train").glob("part-*.arrow")):
        shutil.copy(part, folder / "val" / part.name)
    meta = json.loads((folder / "meta.json").read_text())
    val_meta = json.loads((val_out / "meta.json").read_text())
    assert val_meta["tokenizer"]["digest"] == meta["tokenizer"]["digest"]
    meta["splits"]["val"] = val_meta["splits"]["train"]
    (folder / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    train, val = TokenShards(folder, "train"), TokenShards(folder, "val")
    n_val_bytes = len(val_text.encode("utf-8"))
    if val.n_bytes != n_val_bytes or train.n_bytes != len(train_text.encode("utf-8")):
        raise AssertionError(f"val shards hold {val.n_bytes} bytes, the val text {n_val_bytes}")
    info = {"vocab_size": train.vocab_size, "train_tokens": train.n_tokens, "val_tokens": val.n_tokens,
            "train_docs": train.n_docs, "val_docs": val.n_docs, "val_bytes": val.n_bytes,
            "bytes_per_token": train.n_bytes / (train.n_tokens - train.n_docs)}
    return folder, info


# ------------------------------------------------------------------------------------------------ ours
class OursRun:
    """Our trainer, run in chunks: ``train(stop_after=k)`` stops and checkpoints; the next call resumes."""

    def __init__(self, cfg: PretrainConfig, shards: Path, out: Path) -> None:
        self.cfg, self.shards, self.out = cfg, shards, out
        self.stats: dict = {}

    def steps(self, n: int | None) -> None:
        from pipeline.pretrain.trainer import train
        self.stats = train(self.cfg, self.shards, self.out, stop_after=n)

    @property
    def step(self) -> int:
        from pipeline.pretrain import state
        ckpt = self.out / "checkpoint"
        return state.load_trainer(ckpt)["step"] if state.is_complete(ckpt) else 0


def ours_config(overrides: list[str], **fields) -> PretrainConfig:
    data = json.loads(json.dumps(OURS))
    for assignment in overrides:
        apply_override(PretrainConfig, data, assignment)
    data.update(fields)
    return build(PretrainConfig, data)


# ------------------------------------------------------------------------------------------------ timing
def timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


@dataclass
class Calibration:
    nano_step: float
    nano_eval: float
    ours_step: float
    ours_fixed: float  # per-run costs: final evaluation, best-model save, loss-curve plot
    ours_resume: float  # per-round cost of stopping and resuming


def calibrate(work: Path, nano_args: tuple, shards: Path, overrides: list[str], threads: int,
              n_nano: int, n_ours: int, chunks: int = 4) -> Calibration:
    """Time both recipes under the same load, after warm-up, on throwaway models: ``chunks`` alternating
    chunks of each (load on this box comes in bursts); each of our chunks is a resume, as in the rounds."""
    nano = NanoRun(*nano_args)
    cfg = ours_config(overrides, max_steps=10**6, threads=threads, eval_every=10**6, checkpoint_every=10**6,
                      log_every=50)
    ours = OursRun(cfg, shards, work / "calibration")
    nano.steps(n_nano)  # warm-up (allocator, oneDNN primitives)
    ours.steps(max(5, n_ours // 2))
    t_nano = t_ours = 0.0
    for _ in range(chunks):
        t_nano += timed(nano.steps, n_nano)
        t_ours += timed(ours.steps, n_ours)
    t_resume = max(0.0, timed(ours.steps, 1) - t_ours / (chunks * n_ours))
    t_nano_eval = timed(nano.evaluate)
    fixed = _ours_fixed(cfg, shards, work / "calibration")
    return Calibration(t_nano / (chunks * n_nano), t_nano_eval, t_ours / (chunks * n_ours), fixed, t_resume)


def _ours_fixed(cfg: PretrainConfig, shards: Path, out: Path) -> float:
    """What the trainer does once at the end: whole-val evaluation, best-model save, loss-curve plot."""
    from model import load_model
    from pipeline.lm_eval import evaluate_lm
    from pipeline.pretrain.plots import loss_curve
    from pipeline.pretrain.runtime import setup
    from pipeline.pretrain.trainer import _save_best
    t0 = time.perf_counter()
    model, mcfg = load_model(out / "checkpoint")
    evaluate_lm(model, TokenShards(shards, "val"), cfg, setup("cpu", "fp32", cfg.threads))
    _save_best(out / "model", model, mcfg, shards, {})
    loss_curve(out / "reports" / "metrics.jsonl", out / "reports" / "loss_curve.png")
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------------------------ main
def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: nanoGPT 200 iterations, 4 rounds")
    ap.add_argument("--iters", type=int, default=None, help="nanoGPT iterations (default 2000, the recipe's)")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 20; 4 with --quick)")
    ap.add_argument("--threads", type=int, default=1, choices=(1, 2), help="torch threads for both (default 1)")
    ap.add_argument("--dev", action="store_true", help="tune: validate on the last 10%% of the train split")
    ap.add_argument("--model-type", choices=("unigram", "bpe"), default=OURS_TOKENIZER["model_type"])
    ap.add_argument("--vocab", type=int, default=OURS_TOKENIZER["vocab_size"])
    ap.add_argument("--lines-per-doc", type=int, default=OURS_TOKENIZER["lines_per_doc"])
    ap.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
                    help="a pretrain config value for our run, e.g. --set model.n_layer=6 --set lr=2e-3")
    ap.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it (default: a temp dir)")
    return ap.parse_args()


def char_data(train_text: str, val_text: str) -> tuple[torch.Tensor, torch.Tensor, int]:
    """nanoGPT's prepare.py: the vocabulary is every character of the whole text, sorted."""
    chars = sorted(set(TEXT.read_text(encoding="utf-8")))
    stoi = {c: i for i, c in enumerate(chars)}
    enc = lambda s: torch.tensor([stoi[c] for c in s], dtype=torch.long)  # noqa: E731
    return enc(train_text), enc(val_text), len(chars)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    iters = args.iters or (200 if args.quick else NANO["max_iters"])
    rounds = args.rounds or (4 if args.quick else 20)
    p = {**NANO, "max_iters": iters, "lr_decay_iters": iters}
    train_text, val_text = load_text(args.dev)
    assert val_text.isascii() and train_text.isascii(), "bits per byte = bits per char needs ASCII text"
    work = args.keep or Path(tempfile.mkdtemp(prefix="shakespeare-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, threads {args.threads}, load average {os.getloadavg()[0]:.2f} (before); "
          f"split {'dev (train 90/10)' if args.dev else 'val (nanoGPT 90/10)'}: {len(train_text):,} train chars, "
          f"{len(val_text):,} val chars")
    try:
        run(args, p, iters, rounds, train_text, val_text, work)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


def run(args, p: dict, iters: int, rounds: int, train_text: str, val_text: str, work: Path) -> None:
    t0 = time.perf_counter()
    train_ids, val_ids, vocab = char_data(train_text, val_text)
    nano_prep = time.perf_counter() - t0
    tok = {"model_type": args.model_type, "vocab_size": args.vocab, "sentinels": 0,
           "lines_per_doc": args.lines_per_doc}
    t0 = time.perf_counter()
    shards, info = token_data(work, train_text, val_text, tok)
    ours_prep = time.perf_counter() - t0
    print(f"ours: {tok['model_type']} tokenizer, vocab {info['vocab_size']}, {info['bytes_per_token']:.2f} bytes/token, "
          f"{info['train_tokens']:,} train / {info['val_tokens']:,} val tokens; TokenShards(.., 'val') n_bytes "
          f"{info['val_bytes']:,} = the val text's bytes (checked); tokenize {ours_prep:.1f}s")
    nano_args = (train_ids, val_ids, vocab, p)
    cal = calibrate(work, nano_args, shards, args.overrides, args.threads, n_nano=10 if args.quick else 40,
                    n_ours=6 if args.quick else 25)
    budget = nano_prep + iters * cal.nano_step + cal.nano_eval
    plan = (SAFETY * budget - ours_prep - cal.ours_fixed - rounds * cal.ours_resume) / cal.ours_step
    max_steps = max(rounds, int(plan))
    print(f"calibration: nanoGPT {cal.nano_step * 1e3:.1f} ms/step, eval {cal.nano_eval:.1f}s -> W ~ {budget:.0f}s; "
          f"ours {cal.ours_step * 1e3:.1f} ms/step, resume {cal.ours_resume:.2f}s/round, end {cal.ours_fixed:.1f}s "
          f"-> max_steps {max_steps}")
    cfg = ours_config(args.overrides, max_steps=max_steps, threads=args.threads, eval_every=max_steps,
                      checkpoint_every=max_steps, log_every=50)
    nano, ours = NanoRun(*nano_args), OursRun(cfg, shards, work / "ours")
    t_nano, t_ours = nano_prep, ours_prep
    nano_chunk, ours_chunk = -(-iters // rounds), -(-max_steps // rounds)
    nano_eval: dict = {}
    for r in range(rounds):
        last = r == rounds - 1
        for side in ("nano", "ours") if r % 2 == 0 else ("ours", "nano"):
            if side == "nano":
                t_nano += timed(nano.steps, min(nano_chunk, iters - nano.it))
                if last:
                    t0 = time.perf_counter()
                    nano_eval = nano.evaluate()
                    t_nano += time.perf_counter() - t0
            else:
                t_ours += timed(ours.steps, None if last else ours_chunk)
        print(f"round {r + 1}/{rounds}: nanoGPT iter {nano.it} loss {nano.loss:.3f} ({t_nano:.0f}s), "
              f"ours step {max_steps if last else ours.step} ({t_ours:.0f}s)  load {os.getloadavg()[0]:.2f}")
    report(args, info, nano, nano_eval, t_nano, iters, ours.stats, t_ours, max_steps, cfg)


def report(args, info: dict, nano: NanoRun, ev: dict, t_nano: float, iters: int, st: dict, t_ours: float,
           max_steps: int, cfg: PretrainConfig) -> None:
    nano_tok = iters * NANO["batch_size"] * NANO["block_size"]  # one char = one byte = one token
    ours_tok = st["tokens"]
    ours_bytes_s = ours_tok * info["bytes_per_token"] / t_ours
    print("tokens/s and bytes/s are over each side's whole wall-clock (prep, training, evaluation)")
    print(f"nanoGPT: {t_nano:7.1f}s  {iters} steps  {nano_tok / t_nano:8.0f} tokens/s (= bytes/s)  "
          f"val loss {ev['loss']:.4f} nats/char  val bpb {ev['bpb']:.4f}  ({ev['targets']:,} targets)")
    print(f"ours:    {t_ours:7.1f}s  {st['steps']} steps  {ours_tok / t_ours:8.0f} tokens/s (~{ours_bytes_s:.0f} bytes/s)  "
          f"val loss {st['kept_val_loss']:.4f} nats/token  val bpb {st['kept_val_bpb']:.4f}  "
          f"({st['kept_val_tokens']:.0f} targets, {st['kept_val_bytes']:.0f} bytes)")
    print(f"ours: {param_summary(st)}; tokenizer {args.model_type} {info['vocab_size']}; "
          f"train loss {st['final_train_loss']:.4f}; load average {os.getloadavg()[0]:.2f} (after)")
    met = st["kept_val_bpb"] < ev["bpb"] and t_ours <= t_nano
    print(json.dumps({
        "bench": "shakespeare", "bpb": round(st["kept_val_bpb"], 4), "baseline_bpb": round(ev["bpb"], 4),
        "seconds": round(t_ours, 1), "baseline_seconds": round(t_nano, 1),
        "target": "bpb < baseline_bpb with seconds <= baseline_seconds", "met": met,
        "steps": st["steps"], "baseline_steps": iters, "val_loss": round(st["kept_val_loss"], 4),
        "baseline_val_loss": round(ev["loss"], 4), "tokens_per_s": round(ours_tok / t_ours),
        "baseline_tokens_per_s": round(nano_tok / t_nano), "bytes_per_s": round(ours_bytes_s),
        "baseline_bytes_per_s": round(nano_tok / t_nano), "split": "dev" if args.dev else "val",
        "threads": args.threads, "vocab": info["vocab_size"], "block_size": cfg.model.block_size,
    }))


def param_summary(st: dict) -> str:
    return f"{st['params'] / 1e6:.2f}M params, {st['flops_per_token'] / 1e6:.1f} MFLOP/token"


if __name__ == "__main__":
    main()
