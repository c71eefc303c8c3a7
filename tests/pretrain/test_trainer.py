from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import REPO, token_shards
from pipeline.configtypes import build
from pipeline.loader import TokenShards
from pipeline.pretrain.config import PretrainConfig
from pipeline.pretrain.schedule import lr_at
from pipeline.pretrain.trainer import train

TINY_MODEL = {"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 32}


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return token_shards(tmp_path_factory.mktemp("pretrain"))


def cfg(**over) -> PretrainConfig:
    base = {"model": dict(TINY_MODEL), "max_steps": 12, "batch_size": 4, "warmup_steps": 2, "eval_every": 4,
            "eval_batches": 2, "checkpoint_every": 100, "log_every": 2, "lr": 3e-3, "threads": 1}
    for k, v in over.items():
        if isinstance(v, dict):
            base[k] = {**base.get(k, {}), **v}
        else:
            base[k] = v
    return build(PretrainConfig, base)


def losses(out: Path) -> list[float]:
    return [json.loads(line)["train_loss"] for line in (out / "reports" / "metrics.jsonl").read_text().splitlines()]


def test_schedules():
    kw = dict(lr=1.0, max_steps=100, warmup_steps=10, min_lr_ratio=0.1, decay_frac=0.2)
    assert lr_at(0, schedule="cosine", **kw) == pytest.approx(0.1)
    assert lr_at(9, schedule="cosine", **kw) == pytest.approx(1.0)
    assert lr_at(55, schedule="cosine", **kw) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 45 / 89)))
    assert lr_at(99, schedule="cosine", **kw) == pytest.approx(0.1)  # the last step is at min_lr
    short = dict(kw, max_steps=10, warmup_steps=2)  # a short run once ended at 0.134, not 0.1
    assert [round(lr_at(i, schedule="cosine", **short), 6) for i in (2, 9)] == [1.0, 0.1]
    assert lr_at(50, schedule="wsd", **kw) == 1.0 and lr_at(79, schedule="wsd", **kw) == 1.0
    assert lr_at(89, schedule="wsd", **kw) == pytest.approx(0.55)
    assert lr_at(99, schedule="wsd", **kw) == pytest.approx(0.1)


def test_exact_resume(shards, tmp_path, capsys):
    c = cfg()
    full = train(c, shards, tmp_path / "full")
    first = train(c, shards, tmp_path / "resumed", stop_after=5)
    assert first == {"stopped_at": 5}
    assert json.loads((tmp_path / "resumed" / "checkpoint" / "trainer.json").read_text())["step"] == 5
    from pipeline.tracking import NullTracker
    logged = []

    class Tracker(NullTracker):
        def log_metrics(self, metrics, step=None):
            if "train_loss" in metrics:
                logged.append((step, metrics["train_loss"]))

    resumed = train(c, shards, tmp_path / "resumed", tracker=Tracker())
    said = capsys.readouterr().err
    assert f"pretrain: resuming at step 5 of {c.max_steps} from " in said  # the user is told where it resumes
    assert losses(tmp_path / "resumed") == losses(tmp_path / "full")  # bit-identical at every step
    # the resumed run's tracker gets the whole curve: the kept steps 1-5 first, then 6-12 as they train
    assert logged == list(enumerate(losses(tmp_path / "full"), 1))
    assert len(losses(tmp_path / "full")) == 12
    assert resumed["kept_val_loss"] == full["kept_val_loss"] and resumed["best_step"] == full["best_step"]


def test_causal_figures_and_outputs(shards, tmp_path):
    stats = train(cfg(max_steps=30), shards, tmp_path / "o")
    first, last = losses(tmp_path / "o")[0], stats["final_train_loss"]
    assert last < first - 0.5  # it learns
    val = TokenShards(shards, "val")
    assert stats["kept_val_tokens"] == val.n_tokens - 1  # every val target scored once
    # bits per byte: nats per token -> bits per byte via the val stream's bytes per target
    assert stats["kept_val_bpb"] == pytest.approx(
        stats["kept_val_loss"] * stats["kept_val_tokens"] / math.log(2) / stats["kept_val_bytes"])
    assert (tmp_path / "o" / "model" / "tokenizer" / "tokenizer.model").exists()
    assert (tmp_path / "o" / "reports" / "loss_curve.png").stat().st_size > 1000
    meta = json.loads((tmp_path / "o" / "model" / "meta.json").read_text())
    assert meta["model_class"] == "CausalLM" and meta["step"] == stats["best_step"]


def test_masked_lm_pretraining(shards, tmp_path):
    stats = train(cfg(model={"arch": "encoder"}, max_steps=20, lr=5e-3), shards, tmp_path / "m")
    ls = losses(tmp_path / "m")
    assert sum(ls[-4:]) / 4 < sum(ls[:4]) / 4 - 0.3
    assert 0.0 <= stats["kept_val_accuracy"] <= 1.0 and "kept_val_bpb" not in stats and "kept_val_ppl" not in stats
    meta = json.loads((tmp_path / "m" / "model" / "meta.json").read_text())
    assert meta["model_class"] == "MaskedLM"
    # One definition of the masked-LM validation figures: the evaluate stage's scorer, run on the kept
    # checkpoint with that eval's window budget, gives back the figures pretraining recorded for it.
    from model.checkpoint import load_model
    from pipeline.evaluate import lm
    from pipeline.pretrain.runtime import Runtime

    model, _ = load_model(tmp_path / "m" / "model")
    budget = None if meta["step"] == 20 else 2  # the last eval scores every window, the others eval_batches
    again = lm.score_lm(model, TokenShards(shards, "val"), Runtime(torch.device("cpu"), "fp32"), 32, 4, budget,
                        mask_rate=0.15)
    assert again["loss"] == pytest.approx(meta["val_loss"], rel=1e-5)
    assert again["accuracy"] == pytest.approx(meta["val_accuracy"], abs=1e-9)
    # fill-mask asked for more pieces than the vocabulary has gets all of them (it once crashed in topk)
    from pipeline.inference import fill_mask
    (preds,) = fill_mask(tmp_path / "m" / "model", "the [MASK] value", top_k=10 ** 6)
    from pipeline.tokenize.tokenizer import Tokenizer
    tok = Tokenizer.from_dir(tmp_path / "m" / "model")
    specials = {tok.id_to_piece(i) for i in tok.all_special_ids}
    # every piece but the special ones, a piece and its byte-fallback twin ('s' and <0x73>) as one text
    pieces = [tok.id_to_piece(i) for i in range(tok.vocab_size) if tok.id_to_piece(i) not in specials]
    words = {p.replace("\u2581", " ") for p in pieces if not (p.startswith("<0x") and p.endswith(">"))}
    bytes_ = [int(p[3:5], 16) for p in pieces if p.startswith("<0x") and p.endswith(">")]
    twins = sum(b < 0x80 and chr(b) in words for b in bytes_)
    assert twins > 0 and len(preds) == len(words) + len(bytes_) - twins
    assert len({text for text, _ in preds}) == len(preds) and "<0x73>" not in dict(preds)
    assert sum(p for _, p in preds) == pytest.approx(1.0, abs=1e-4) and not specials & {piece for piece, _ in preds}
    with pytest.raises(ValueError, match=r"^fill-mask: the text is \d+ tokens with its masks; the model reads at "
                       r"most 32"):
        fill_mask(tmp_path / "m" / "model", "the value " * 40 + "[MASK]")


def test_objective_must_match_arch():
    with pytest.raises(ValueError, match="pretrain.objective: got 'masked' for arch 'decoder'"):
        cfg(objective="masked")


def test_the_config_section_refuses_every_model_shape_the_model_refuses():
    """An odd head size with rotary positions passed the config, so `--until pretrain` ran every stage before
    pretraining, then failed on ModelConfig's check with a traceback."""
    import itertools
    from dataclasses import asdict

    from model import ModelConfig
    from pipeline import config
    from pipeline.configtypes import ConfigError
    for n_embd, n_head, pos in itertools.product((8, 12, 30, 32, 48), (1, 2, 3, 4), ("rotary", "learned")):
        try:
            section = build(PretrainConfig, {"model": {"n_embd": n_embd, "n_head": n_head, "pos": pos}}).model
        except ConfigError:
            section = None
        try:
            ModelConfig(vocab_size=256, **asdict(build(PretrainConfig, {}).model) | {
                "n_embd": n_embd, "n_head": n_head, "pos": pos})
            model_ok = True
        except ValueError:
            model_ok = False
        assert (section is not None) == model_ok, (n_embd, n_head, pos)
    with pytest.raises(ConfigError, match=r"^pretrain.model.n_embd: got 30, allowed: an even head size n_embd / "
                       r"n_head \(here 15\) with pretrain.model.pos 'rotary'"):
        config.load("tiny", overrides=["pretrain.model.n_embd=30", "pretrain.model.n_head=2",
                                       "pretrain.model.pos=rotary"])


def test_a_validation_split_with_nothing_to_score_is_a_users_error(shards, tmp_path, monkeypatch):
    """Its figures came back empty and the trainer failed on a KeyError('loss'), with Prefect's tracebacks."""
    import pipeline.pretrain.trainer as trainer
    from pipeline.loader.batches import NotEnoughTokens
    monkeypatch.setattr(trainer, "evaluate_lm", lambda *a, **k: {})  # what a val split too short to score gives
    with pytest.raises(NotEnoughTokens, match=r"the val split \([\d,]+ tokens\) has no token to score"):
        train(cfg(max_steps=4), shards, tmp_path / "out")


def test_global_batch_tokens_sets_accumulation(shards, tmp_path):
    stats = train(cfg(max_steps=2, global_batch_tokens=4 * 32 * 3), shards, tmp_path / "g")
    assert stats["grad_accum"] == 3 and stats["tokens"] == 2 * 4 * 32 * 3


def test_continued_pretraining_starts_from_weights(shards, tmp_path, monkeypatch):
    train(cfg(max_steps=20), shards, tmp_path / "base")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # a relative init_from is taken from the project root
    cont = train(cfg(max_steps=2, init_from="base/model"), shards, tmp_path / "cont", root=tmp_path)
    fresh = train(cfg(max_steps=2), shards, tmp_path / "fresh")
    assert cont["kept_val_loss"] < fresh["kept_val_loss"] - 0.3
    with pytest.raises(ValueError, match="different model config"):
        train(cfg(max_steps=1, model={"n_embd": 64}, init_from=str(tmp_path / "base" / "model")), shards,
              tmp_path / "bad")
    # the architecture is checked at planning, from the saved config file
    from pipeline.configtypes import ConfigError
    from pipeline.pretrain import fingerprint
    assert fingerprint(cfg(init_from="base/model"), tmp_path)
    with pytest.raises(ConfigError, match=r"n_embd: \d+ there, 64 here\); continued pretraining needs the same "
                       r"pretrain.model settings but block_size and dropout$"):
        fingerprint(cfg(model={"n_embd": 64}, init_from="base/model"), tmp_path)
    # dropout, and a rotary model's context, may change: the same weights (a usual continued-pretraining recipe)
    longer = cfg(max_steps=2, model={"dropout": 0.1, "block_size": 64}, init_from="base/model")
    assert fingerprint(longer, tmp_path)
    assert train(longer, shards, tmp_path / "longer", root=tmp_path)["kept_val_loss"] < fresh["kept_val_loss"] - 0.3
    learned = {"pos": "learned"}
    train(cfg(max_steps=2, model=learned), shards, tmp_path / "learned")
    with pytest.raises(ConfigError, match=r"block_size: 32 there, 64 here\); .* settings but dropout$"):
        fingerprint(cfg(model={**learned, "block_size": 64}, init_from="learned/model"), tmp_path)
    # the same architecture and vocabulary size from another tokenizer: its ids are other pieces
    tok = tmp_path / "base" / "model" / "tokenizer" / "tokenizer.model"
    tok.write_bytes(tok.read_bytes() + b"\0")
    with pytest.raises(ConfigError, match="another tokenizer"):
        train(cfg(max_steps=1, init_from="base/model"), shards, tmp_path / "other", root=tmp_path)


def test_the_model_files_checked_at_planning_are_those_load_model_reads():
    from model import checkpoint
    from pipeline.pretrain import MODEL_FILES
    assert set(MODEL_FILES) == {checkpoint.WEIGHTS, checkpoint.CONFIG, checkpoint.META}


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def test_plain_entry_point(shards, tmp_path):
    r = subprocess.run([sys.executable, "-m", "pipeline.pretrain", "--shards", str(shards), "--out", str(tmp_path / "e"),
                        "--set", "max_steps=3", "--set", "model.n_layer=1", "--set", "model.n_embd=32",
                        "--set", "model.n_head=2", "--set", "model.block_size=32", "--set", "batch_size=2",
                        "--set", "threads=1"], capture_output=True, text=True, cwd=tmp_path, env=_env())
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout.strip().splitlines()[-1])["steps"] == 3
    bad = subprocess.run([sys.executable, "-m", "pipeline.pretrain", "--shards", str(shards), "--out", "x",
                          "--set", "model.norm=batchnorm"], capture_output=True, text=True, env=_env())
    assert bad.returncode == 2 and "model.norm: got 'batchnorm', allowed: 'layernorm', 'rmsnorm'" in bad.stderr


@pytest.mark.parametrize("arch", ["decoder", "encoder_decoder"])
def test_ddp_two_processes_match_one(shards, tmp_path, arch):
    """torchrun with 2 CPU processes (gloo), batch 2 each, equals one process with batch 4 (an encoder-decoder's
    batches are (source, decoder input) pairs: each rank takes its rows of both)."""
    common = ["--set", "max_steps=4", "--set", "model.n_layer=1", "--set", "model.n_embd=32", "--set",
              "model.n_head=2", "--set", "model.block_size=32", "--set", "threads=1", "--set", "eval_every=4",
              "--set", "warmup_steps=0", "--set", "log_every=1", "--set", f"model.arch={arch}"]
    single = subprocess.run([sys.executable, "-m", "pipeline.pretrain", "--shards", str(shards), "--out",
                             str(tmp_path / "one"), "--set", "batch_size=4", *common],
                            capture_output=True, text=True, env=_env())
    assert single.returncode == 0, single.stderr[-2000:]
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "pipeline.pretrain", "--shards", str(shards), "--out", str(tmp_path / "two"),
                          "--set", "batch_size=2", *common], capture_output=True, text=True, env=_env(), timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    a, b = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(a) == len(b) == 4
    assert a == pytest.approx(b, rel=1e-4, abs=1e-5)


def test_masked_lm_accumulation_weighs_every_masked_token_like_one_big_batch():
    """Micro-batches with 4 and 20 masked tokens: averaging their two means (the old 1 / accum) gave a gradient
    70% off the big batch's; the token weights give the big batch's."""
    from model.layers import IGNORE_INDEX, token_loss
    from pipeline.pretrain.runtime import Runtime
    from pipeline.pretrain.trainer import token_weights
    g = torch.Generator().manual_seed(0)
    targets = torch.full((4, 12), IGNORE_INDEX)
    targets[0, :2] = targets[1, :2] = 3  # micro-batch 1 (rows 0-1): 4 masked tokens
    targets[2:, :10] = torch.randint(0, 7, (2, 10), generator=g)  # micro-batch 2: 20
    logits = torch.randn(4, 12, 7, generator=g, requires_grad=True)
    token_loss(logits, targets).backward()
    big = logits.grad.clone()
    logits.grad = None
    micros = [targets[:2], targets[2:]]
    weights = token_weights(micros, Runtime(torch.device("cpu"), "fp32"))
    assert weights == pytest.approx([4 / 24, 20 / 24])
    for rows, w in zip((slice(0, 2), slice(2, 4)), weights):
        (token_loss(logits[rows], targets[rows]) * w).backward()
    assert torch.allclose(logits.grad, big, atol=1e-7)


def test_masked_lm_steps_with_accumulation_use_the_token_weights(shards, tmp_path, monkeypatch):
    """The trainer weighs each micro-batch of a masked-LM step by its masked tokens (token_weights), and a
    causal step keeps the plain 1 / accum (every micro-batch has the same number of targets)."""
    import pipeline.pretrain.trainer as trainer
    calls = []

    def spy(targets, rt):
        out = token_weights(targets, rt)
        calls.append(([int((y != -100).sum()) for y in targets], out))
        return out

    from pipeline.pretrain.trainer import token_weights
    monkeypatch.setattr(trainer, "token_weights", spy)
    stats = train(cfg(model={"arch": "encoder"}, max_steps=3, global_batch_tokens=4 * 32 * 2), shards, tmp_path / "m")
    assert stats["grad_accum"] == 2 and len(calls) == 3
    for counts, weights in calls:
        assert len(counts) == 2
        assert weights == pytest.approx([n / sum(counts) for n in counts])
    assert all(math.isfinite(x) for x in losses(tmp_path / "m"))
    train(cfg(max_steps=2, global_batch_tokens=4 * 32 * 2), shards, tmp_path / "c")
    assert len(calls) == 3  # not called for a causal model


def test_shards_whose_tokenizer_is_gone_publish_no_model(shards, tmp_path):
    """`gc` once removed the token shards under a running pretrain, which then published a model without its
    tokenizer, taken as cached by every later run."""
    import shutil
    copy = tmp_path / "shards"
    shutil.copytree(shards, copy)
    shutil.rmtree(copy / "tokenizer")
    from pipeline.stage import InputGone
    with pytest.raises(InputGone, match=r"^pretrain: the token shards' tokenizer or meta.json is gone from"):
        train(cfg(max_steps=2), copy, tmp_path / "m")
    assert not (tmp_path / "m" / "model").exists()


def test_a_diverged_run_stops_and_publishes_nothing(shards, tmp_path):
    """lr=inf (now a config error) trained to NaN weights and the stage published them as built."""
    from pipeline.stage import Diverged
    with pytest.raises(Diverged, match=r"^pretrain: the training loss is nan at step \d+ \(lr .*\): the run diverged; "
                       r"lower pretrain.lr"):
        train(cfg(max_steps=30, lr=1e30, warmup_steps=0, grad_clip=0.0, checkpoint_every=1), shards, tmp_path / "m")
    assert not (tmp_path / "m" / "model").exists()
    # nor anything for a next run to resume (status said a diverged run's partial would be resumed)
    from pipeline.store import output_files
    assert output_files(tmp_path / "m") == []


def test_no_validation_split_is_refused_at_planning_when_the_run_pretrains(tmp_path):
    """tokenize.val_fraction=0 built tokenize, then pretraining failed for want of validation text."""
    from pipeline import config
    from pipeline.configtypes import ConfigError
    from pipeline.plan import make_plan
    cfg = config.load("tiny", overrides=["tokenize.val_fraction=0"])
    with pytest.raises(ConfigError, match=r"^tokenize.val_fraction: got 0, allowed: more than 0 when the run "
                       r"pretrains"):
        make_plan(cfg, tmp_path / "work", tmp_path)
    assert [p.name for p in make_plan(cfg, tmp_path / "work", tmp_path, until="tokenize") if p.action == "run"][-1] \
        == "tokenize"
