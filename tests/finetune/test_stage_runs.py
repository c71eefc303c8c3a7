"""The finetune stage's thread count, and what it reports of a two-stage run kept from stage 1."""
from __future__ import annotations

import json

from pipeline.configtypes import build
from pipeline.finetune import FinetuneConfig, run
from pipeline.stage import StageContext
from pipeline.store import Manifest
from pipeline.tasks import TasksConfig


def context(tmp_path, pretrained):
    manifest = Manifest(stage="pretrain", key="p", version="1", config={}, inputs={}, files={}, path=pretrained)
    tasks = build(TasksConfig, {"tasks": [{"name": "stdlib_area", "source": "stdlib_area", "max_train": 48,
                                           "max_eval": 24}]})
    return StageContext(name="finetune", key="k", out=tmp_path / "out", inputs={"model": manifest}, root=tmp_path,
                        work=tmp_path / "work", extra={"tasks": tasks}), tasks


def test_runs_side_by_side_never_hold_more_threads_than_cores(monkeypatch):
    """threads 0: a task's runs share the cores (whatever the other tasks: a task added keeps every run's key);
    runs side by side are as many as the cores hold: the tiny preset's 2 tasks of one 2-thread run each ran 4
    threads on 2 cores."""
    from pipeline.finetune.stage import parallel_runs, run_threads
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    one = FinetuneConfig(methods=["full"], baseline=False, seeds=[0])
    assert run_threads(one) == 2 and parallel_runs(workers=2, todo=2, threads=2) == 1
    three = FinetuneConfig(methods=["full", "lora"], baseline=True, seeds=[0])
    assert run_threads(three) == 1 and parallel_runs(2, 6, 1) == 2 and parallel_runs(1, 6, 1) == 1
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert [run_threads(one), run_threads(three)] == [8, 2]
    assert [parallel_runs(8, 6, 2), parallel_runs(8, 2, 2), parallel_runs(8, 6, 3)] == [4, 2, 2]
    assert run_threads(FinetuneConfig(methods=["full"], threads=3)) == 3


def test_a_two_stage_run_kept_from_stage_one_reports_the_head_alone(tmp_path, pretrained_root, monkeypatch):
    """Validation peaked in stage 1 (the head alone): the report said the run trained the whole model."""
    from pipeline.evaluate.report import runs_lines
    from pipeline.evaluate.scores import score_runs
    from pipeline.finetune import stage as stage_mod
    real = stage_mod.fit

    def peaked_in_stage_one(*args, **kwargs):
        out = real(*args, **kwargs)
        out.best_epoch = 1.0  # (the weights do not matter here: what the result and report say of them)
        return out
    monkeypatch.setattr(stage_mod, "fit", peaked_in_stage_one)
    cfg = FinetuneConfig(methods=["two_stage", "full"], baseline=False, epochs=2, head_epochs=1, batch_size=16,
                         max_len=32, threads=1)
    ctx, tasks = context(tmp_path, pretrained_root)
    run(cfg, ctx)
    two, full = (json.loads((ctx.out / "runs" / "stdlib_area" / f"{m}-pretrained-s0" / "result.json").read_text())
                 for m in ("two_stage", "full"))
    n_embd = json.loads((pretrained_root / "model" / "model_config.json").read_text())["n_embd"]
    assert two["best_stage"] == 1 and "best_stage" not in full
    assert two["trainable_params"] == (n_embd + 1) * len(two["labels"])  # the head's weight and bias
    assert two["total_params"] == full["total_params"] == full["trainable_params"]
    assert two["trainable_share"] == two["trainable_params"] / two["total_params"]
    lines = "\n".join(runs_lines(score_runs(ctx.out, tasks)))
    assert "two_stage → full (kept: stage 1, the head alone)" in lines


def test_a_diverged_run_is_named_and_the_runs_done_before_it_are_kept(tmp_path, pretrained_root, monkeypatch):
    """Of a stage's many runs, the message named none; the LoRA run trained before it sits in the partial folder."""
    import pytest
    from pipeline.finetune import stage as stage_mod
    from pipeline.stage import Diverged
    real = stage_mod.fit

    def full_diverges(model, method, *args, **kwargs):
        if method == "full":
            raise Diverged("finetune: the training loss is nan at step 3 (epoch 1): the run diverged; lower "
                           "finetune.lr")
        return real(model, method, *args, **kwargs)
    monkeypatch.setattr(stage_mod, "fit", full_diverges)
    cfg = FinetuneConfig(methods=["lora", "full"], baseline=False, epochs=1, batch_size=16, max_len=32, threads=1)
    ctx, _ = context(tmp_path, pretrained_root)
    with pytest.raises(Diverged, match=r"^finetune run stdlib_area/full-pretrained-s0: the training loss is nan at "
                       r"step 3 \(epoch 1\): the run diverged; lower finetune.lr$"):
        run(cfg, ctx)
    assert (ctx.out / "runs" / "stdlib_area" / "lora-pretrained-s0" / "result.json").is_file()
