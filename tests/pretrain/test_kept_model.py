"""The model pretraining keeps: the best by figures of the same validation tokens at every eval, and reported by
its figures on the whole validation split. A tester found the last eval (the whole split) compared with the
periodic ones (the first ``eval_batches`` batches): a worse model kept, reported with the figures of another."""
from __future__ import annotations

import json

import pytest

from helpers import token_shards
from model import load_model
from pipeline.lm_eval import evaluate_lm
from pipeline.loader import TokenShards
from pipeline.pretrain.runtime import setup
from pipeline.pretrain.trainer import train
from pretrain.test_trainer import cfg


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return token_shards(tmp_path_factory.mktemp("kept"))


def test_the_kept_model_is_chosen_on_one_token_set_and_reported_on_the_whole_split(shards, tmp_path):
    c = cfg(max_steps=40, eval_every=3, eval_batches=1, lr=0.1, min_lr_ratio=1.0, warmup_steps=0)
    out = tmp_path / "o"
    stats = train(c, shards, out)
    records = [json.loads(line) for line in (out / "reports" / "metrics.jsonl").read_text().splitlines()]
    evals = [(r["step"], r["val_loss"], r["val_tokens"]) for r in records if "val_loss" in r]
    assert len(evals) == 14 and len({n for _, _, n in evals}) == 1  # every eval: the same tokens ...
    assert evals[0][2] < TokenShards(shards, "val").n_tokens - 1  # ... a part of the split
    best_step, best_loss, _ = min(evals, key=lambda e: (e[1], e[0]))
    assert (stats["best_step"], stats["select_val_loss"]) == (best_step, best_loss)
    assert best_step != c.max_steps  # (this recipe's best is an earlier step: the kept weights are reloaded)
    model, _ = load_model(out / "model")
    whole = evaluate_lm(model.eval(), TokenShards(shards, "val"), c, setup("cpu", "float32", 1), max_batches=None)
    assert whole["tokens"] == TokenShards(shards, "val").n_tokens - 1
    assert stats["kept_val_loss"] == stats["best_val_loss"] == pytest.approx(whole["loss"], abs=1e-6)
    meta = json.loads((out / "model" / "meta.json").read_text())
    assert meta["step"] == best_step and meta["val_loss"] == pytest.approx(whole["loss"], abs=1e-6)
    again = train(c, shards, out)  # the training done (a run killed before it published): the same figures
    assert again["kept_val_loss"] == stats["kept_val_loss"] and again["best_step"] == best_step


def test_a_resume_whose_model_folder_is_not_the_checkpoints_best_chooses_again(shards, tmp_path):
    """A killed run may save a later best after its last checkpoint; where resuming is not exact (GPU, bf16) the
    replayed eval may not replace it, and the folder's weights would be published as the checkpoint's best."""
    c = cfg(max_steps=12, eval_every=3, eval_batches=1)
    out = tmp_path / "o"
    assert train(c, shards, out, stop_after=7) == {"stopped_at": 7}  # evals at 3 and 6; checkpoint at 7
    meta_file = out / "model" / "meta.json"
    meta = json.loads(meta_file.read_text())
    meta_file.write_text(json.dumps({**meta, "step": 11}))  # as if saved by the killed run after its checkpoint
    trainer = out / "checkpoint" / "trainer.json"  # and as if no later eval beat the checkpoint's best
    trainer.write_text(json.dumps({**json.loads(trainer.read_text()), "best_val_loss": -1.0}))
    stats = train(c, shards, out)
    assert stats["best_step"] in (9, 12)  # chosen among the evals after the resume
    assert json.loads(meta_file.read_text())["step"] == stats["best_step"]
