"""The FINETUNE stage end to end on a tiny pretrained model folder built in the test."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from finetune.tiny_pretrained import make_pretrained
from pipeline.configtypes import ConfigError, build
from pipeline.finetune import FinetuneConfig, run
from pipeline.finetune.results import list_runs, test_metrics
from pipeline.stage import StageContext
from pipeline.store import Manifest
from pipeline.tasks import TasksConfig

TASKS = {"tasks": [
    {"name": "stdlib_area", "source": "stdlib_area", "max_train": 48, "max_eval": 24},
    {"name": "ner", "kind": "tagging", "source": "files", "train": "ner.conll", "val_fraction": 0.25,
     "test_fraction": 0.25},
]}
WORDS = ["the", "socket", "file", "error", "list", "value"]


def write_ner(folder: Path) -> None:
    lines = []
    for i in range(48):
        w = [WORDS[(i + j) % 6] for j in range(5)] + [f"n{i}"]  # (each sentence its own: copies share a side)
        tags = ["B-CODE" if x in ("socket", "error") else "O" for x in w]
        lines += [f"{a} {t}" for a, t in zip(w, tags)] + [""]
    lines += ["-DOCSTART- O", "", "lonely"]  # one bad row: no tag column
    (folder / "ner.conll").write_text("\n".join(lines) + "\n")


def context(tmp_path: Path, pretrained: Path, tasks: TasksConfig) -> StageContext:
    manifest = Manifest(stage="pretrain", key="p", version="1", config={}, inputs={}, files={}, path=pretrained)
    return StageContext(name="finetune", key="k", out=tmp_path / "out", inputs={"model": manifest},
                        root=tmp_path, work=tmp_path / "work", extra={"tasks": tasks})


CFG = FinetuneConfig(methods=["full", "lora", "adapter", "two_stage"], epochs=2, head_epochs=1, batch_size=16,
                     max_len=48, threads=1, lora_r=4, adapter_bottleneck=8)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, pretrained_root):
    tmp = tmp_path_factory.mktemp("stage")
    write_ner(tmp)
    tasks = build(TasksConfig, TASKS)
    ctx = context(tmp, pretrained_root, tasks)
    return ctx, tasks, run(CFG, ctx)


def test_layout_and_stats(finished):
    ctx, tasks, stats = finished
    out = ctx.out
    for task in ("stdlib_area", "ner"):
        for split in ("train", "validation", "test"):
            assert (out / "tasks" / task / f"{split}.jsonl").stat().st_size > 0
    labels = json.loads((out / "tasks" / "ner" / "labels.json").read_text())
    assert labels == {"task": "ner", "kind": "tagging", "labels": ["O", "B-CODE", "I-CODE"], "scheme": "BIO"}
    drops = json.loads((out / "tasks" / "ner" / "drops.json").read_text())
    assert drops["counts"] == {"misaligned_tags": 1}
    assert drops["samples"]["misaligned_tags"][0]["where"].startswith("ner.conll:")
    area = [json.loads(x) for x in (out / "tasks" / "stdlib_area" / "train.jsonl").read_text().splitlines()]
    assert len(area) == 48 and all(ex["unit"].startswith("module/") for ex in area)
    runs = list_runs(out)
    assert [(r["task"], r["method"], r["init"]) for r in runs][:5] == [
        ("ner", "adapter", "pretrained"), ("ner", "full", "pretrained"), ("ner", "full", "scratch"),
        ("ner", "lora", "pretrained"), ("ner", "two_stage", "pretrained")]
    assert stats["runs"] == 10 and stats["runs_resumed"] == 0
    for r in runs:
        metric = "f1" if r["task"] == "ner" else "accuracy"
        assert stats[f"{r['task']}.{r['method']}-{r['init']}-s0.best_val_{metric}"] == r["best"][metric]
        assert len(r["curves"]) == 2 and {"train_loss", f"val_{metric}", "val_loss"} <= set(r["curves"][0])
        assert r["best"][metric] == max(c[f"val_{metric}"] for c in r["curves"])
        assert (Path(r["run_dir"]) / "model" / "tokenizer" / "tokenizer.model").exists()
    by = {(r["task"], r["method"], r["init"]): r for r in runs}
    full, lora, adapter = (by[("stdlib_area", m, "pretrained")] for m in ("full", "lora", "adapter"))
    two = by[("stdlib_area", "two_stage", "pretrained")]
    assert two["then"] == CFG.then and "then" not in full  # what a two-stage run's second stage trained
    assert json.loads((Path(two["run_dir"]) / "model" / "meta.json").read_text())["then"] == CFG.then
    assert full["trainable_params"] == full["total_params"]
    assert 0 < lora["trainable_share"] < 0.5 and 0 < adapter["trainable_share"] < 0.5
    assert stats["stdlib_area.n_train"] == 48 and stats["stdlib_area.n_test"] == 24
    assert stats["ner.dropped.misaligned_tags"] == 1
    assert list((ctx.work / "_cache").glob("stdlib-docstrings-*.json"))  # the parsed stdlib, for next time
    gain = stats["stdlib_area.lora.val_gain_over_scratch"]
    assert gain == pytest.approx(lora["best"]["accuracy"] - by[("stdlib_area", "full", "scratch")]["best"]["accuracy"])


def test_reports(finished):
    ctx, _, _ = finished
    rep = ctx.out / "reports"
    assert (rep / "stdlib_area" / "lora-pretrained-s0.confusion.png").stat().st_size > 1000
    per = json.loads((rep / "ner" / "full-pretrained-s0.per_label.json").read_text())
    assert per["level"] == "entity" and set(per["per_label"] or {}) <= {"CODE"}
    cls = json.loads((rep / "stdlib_area" / "full-scratch-s0.per_label.json").read_text())
    assert set(cls["per_label"]) == set(json.loads(
        (ctx.out / "tasks" / "stdlib_area" / "labels.json").read_text())["labels"])


def test_test_metrics_for_every_run(finished):
    ctx, tasks, _ = finished
    for r in list_runs(ctx.out):
        m = test_metrics(Path(r["run_dir"]), tasks)
        assert m["task"] == r["task"] and m["n_test"] == (24 if r["task"] == "stdlib_area" else m["n_test"])
        if r["task"] == "ner":
            assert {"precision", "recall", "f1", "per_type"} <= set(m) and 0 <= m["f1"] <= 1 and "correct" not in m
            correct, pred, gold = map(sum, zip(*m["span_counts"]))
            assert len(m["span_counts"]) == m["n_test"] and (pred, gold) == (m["n_pred_spans"], m["n_gold_spans"])
            assert (2 * correct / (pred + gold) if pred + gold else 0.0) == pytest.approx(m["f1"])
        else:
            assert 0 <= m["accuracy"] <= 1 and len(m["confusion"]) == len(r["labels"])
            assert sum(map(sum, m["confusion"])) == 24
            assert len(m["correct"]) == 24 and sum(m["correct"]) / 24 == pytest.approx(m["accuracy"])


def test_resume_keeps_finished_runs(finished, tmp_path, pretrained_root):
    ctx, tasks, stats = finished
    import shutil
    out2 = tmp_path / "out"
    shutil.copytree(ctx.out, out2)
    (out2 / "runs" / "ner" / "lora-pretrained-s0" / "result.json").unlink()
    kept = (out2 / "runs" / "ner" / "full-pretrained-s0" / "result.json").read_text()
    (tmp_path / "ner.conll").write_text((ctx.root / "ner.conll").read_text())
    from pipeline.tracking import NullTracker
    logged: dict[str, list] = {}

    class Tracker(NullTracker):
        def log_metrics(self, metrics, step=None):
            for k, v in metrics.items():
                logged.setdefault(k, []).append((step, v))

    rctx = context(tmp_path, pretrained_root, tasks)
    rctx.tracker = Tracker()
    again = run(CFG, rctx)
    assert again["runs_resumed"] == 9
    # a kept run's curve goes to the new stage run too (a resumed stage's MLflow run once had none of it)
    kept_run = json.loads(kept)
    assert logged["ner.full-pretrained-s0.val_f1"] == [(r["step"], r["val_f1"]) for r in kept_run["curves"]]
    assert logged["ner.full-pretrained-s0.best_epoch"] == [(None, kept_run["best_epoch"])]
    assert len(logged["ner.lora-pretrained-s0.best_epoch"]) == 1  # the run trained again, logged once
    summary = lambda out: json.loads((out / "reports" / "summary.json").read_text())
    assert summary(out2) == summary(ctx.out) and "runs_resumed" not in summary(out2)  # what ran, not how
    assert (out2 / "runs" / "ner" / "full-pretrained-s0" / "result.json").read_text() == kept
    assert again["ner.lora-pretrained-s0.best_val_f1"] == pytest.approx(stats["ner.lora-pretrained-s0.best_val_f1"])


def test_a_run_killed_while_writing_its_reports_is_redone_on_resume(finished, tmp_path, pretrained_root, monkeypatch):
    """The run's result.json once went public before its reports were written: a kill in between lost the
    confusion matrix and per-label table for good, since resume skips a run with a result."""
    from pipeline.finetune import stage
    ctx, tasks, _ = finished
    (tmp_path / "ner.conll").write_text((ctx.root / "ner.conll").read_text())
    real = stage.write_run_reports

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(stage, "write_run_reports", killed)
    with pytest.raises(KeyboardInterrupt):
        run(CFG, context(tmp_path, pretrained_root, tasks))
    monkeypatch.setattr(stage, "write_run_reports", real)
    run(CFG, context(tmp_path, pretrained_root, tasks))
    reports = lambda out: sorted(p.relative_to(out).as_posix() for p in (out / "reports").rglob("*") if p.is_file())
    assert reports(tmp_path / "out") == reports(ctx.out)


def test_encoder_trunk_pools_first_token(tmp_path):
    root = make_pretrained(tmp_path / "enc", arch="encoder")
    tasks = build(TasksConfig, {"tasks": [{"name": "ner", "kind": "tagging", "source": "files",
                                           "train": "ner.conll"}, {"name": "c", "source": "files", "train": "c.csv"}]})
    write_ner(tmp_path)
    (tmp_path / "c.csv").write_text("text,label\n" + "".join(f"{WORDS[i % 6]} x,{i % 2}\n" for i in range(40)))
    cfg = FinetuneConfig(methods=["full"], baseline=False, epochs=1, threads=1, max_len=32)
    stats = run(cfg, context(tmp_path, root, tasks))
    meta = json.loads((tmp_path / "out" / "runs" / "c" / "full-pretrained-s0" / "model" / "meta.json").read_text())
    assert meta["model_kwargs"]["pooling"] == "first" and meta["arch"] == "encoder"
    assert stats["runs"] == 2 and "c.full-pretrained-s0.best_val_accuracy" in stats


class ArtifactRecorder:
    """A tracker that keeps what it was asked to log as artifacts."""
    run_id = None

    def __init__(self):
        self.artifacts: list[tuple[Path, str | None]] = []

    def log_params(self, params): pass
    def log_metrics(self, metrics, step=None): pass
    def set_tags(self, tags): pass
    def flush(self): pass

    def log_artifact(self, path, artifact_path=None):
        self.artifacts.append((Path(path), artifact_path))


@pytest.mark.parametrize("log", [True, False])
def test_each_runs_best_checkpoint_is_logged_to_mlflow(tmp_path, pretrained_root, log):
    tasks = build(TasksConfig, {"tasks": [TASKS["tasks"][0]]})
    ctx = context(tmp_path, pretrained_root, tasks)
    ctx.tracker = ArtifactRecorder()
    run(FinetuneConfig(methods=["full", "lora"], seeds=[0], epochs=1, threads=1, max_len=32, log_checkpoints=log),
        ctx)
    checkpoints = [(p.relative_to(ctx.out).as_posix(), a) for p, a in ctx.tracker.artifacts
                   if a and a.startswith("checkpoints/")]
    name = TASKS["tasks"][0]["name"]
    want = [(f"runs/{name}/{r}/model", f"checkpoints/{name}/{r}")
            for r in ("full-pretrained-s0", "lora-pretrained-s0", "full-scratch-s0")]
    assert sorted(checkpoints) == (sorted(want) if log else [])
    assert all((ctx.out / p / "model.safetensors").is_file() for p, _ in checkpoints)


def test_parallel_runs_give_the_sequential_results(finished, tmp_path, pretrained_root):
    """Two worker processes train the runs at once: the same curves, best scores and weights as one by one,
    and the parent logs every run's metrics in run order."""
    from safetensors.torch import load_file

    from pipeline.finetune.config import FinetuneConfig as Cfg
    from pipeline.tracking import NullTracker

    ctx, tasks, stats = finished
    logged = []

    class Tracker(NullTracker):
        def log_metrics(self, metrics, step=None): logged.append((dict(metrics), step))

    cfg = Cfg(**{**CFG.__dict__, "methods": ["full", "lora"]})  # 6 runs a task is enough here
    (tmp_path / "ner.conll").write_text((ctx.root / "ner.conll").read_text())
    pctx = context(tmp_path, pretrained_root, tasks)
    pctx.workers, pctx.tracker = 2, Tracker()
    par = run(cfg, pctx)
    assert par["parallel_runs"] == 2 and par["runs"] == 6
    seq = {(r["task"], r["method"], r["init"]): r for r in list_runs(ctx.out)}
    for r in list_runs(pctx.out):
        s = seq[(r["task"], r["method"], r["init"])]
        assert r["curves"] == s["curves"] and r["best"] == s["best"] and r["best_epoch"] == s["best_epoch"]
        a = load_file(Path(r["run_dir"]) / "model" / "model.safetensors")
        b = load_file(Path(s["run_dir"]) / "model" / "model.safetensors")
        assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
    names = [k for m, _ in logged for k in m if k.endswith(".best_epoch")]
    assert names == [f"{t}.{m}-{i}-s0.best_epoch" for t in ("stdlib_area", "ner")
                     for m, i in (("full", "pretrained"), ("lora", "pretrained"), ("full", "scratch"))]


def test_a_failed_parallel_run_stops_the_queued_ones(tmp_path, pretrained_root):
    """A failing run (or Ctrl-C) ends the pool at once: leaving it normally trained every queued run first."""
    import multiprocessing

    from pipeline.finetune.stage import run_parallel
    from pipeline.tasks import load_task
    from pipeline.tokenize.tokenizer import Tokenizer
    from pipeline.finetune.encode import encode
    from pipeline.tracking import NullTracker
    from model import load_config
    import torch

    write_ner(tmp_path)
    tasks = build(TasksConfig, {"tasks": [TASKS["tasks"][1]]})
    ctx = context(tmp_path, pretrained_root, tasks)
    ctx.tracker = NullTracker()
    model_dir = pretrained_root / "model"
    data = load_task(tasks.tasks[0], tmp_path)
    tok, arch = Tokenizer.from_dir(model_dir), load_config(model_dir).arch
    enc = {s: encode(data.splits[s], data.kind, data.labels, tok, arch, 48) for s in ("train", "validation")}
    cfg = FinetuneConfig(methods=["full", "lora"], epochs=3, batch_size=4, max_len=48, threads=1,
                         lora_targets=["no.such"])
    todo = [(data, enc, ("lora", "pretrained", 0), "k")] + [(data, enc, ("full", "pretrained", s), f"k{s}")
                                                             for s in range(8)]
    with pytest.raises(ValueError, match="no.such"):
        run_parallel(ctx, cfg, todo, model_dir, torch.device("cpu"), 48, 2, 1)
    assert not [p for p in multiprocessing.active_children() if p.is_alive()]
    assert len(list((ctx.out / "runs" / "ner").glob("*/result.json"))) < 8


def test_trunk_dropout_trains_the_runs_without_the_pretrained_dropout_and_records_it(tmp_path):
    root = make_pretrained(tmp_path / "drop", dropout=0.3)
    tasks = build(TasksConfig, {"tasks": [{"name": "c", "source": "files", "train": "c.csv"}]})
    (tmp_path / "c.csv").write_text("text,label\n" + "".join(f"{WORDS[i % 6]} x,{i % 2}\n" for i in range(40)))
    cfg = FinetuneConfig(methods=["full"], epochs=1, threads=1, max_len=32, trunk_dropout=0.0)
    run(cfg, context(tmp_path, root, tasks))
    for init in ("pretrained", "scratch"):
        saved = json.loads((tmp_path / "out" / "runs" / "c" / f"full-{init}-s0" / "model" / "model_config.json")
                           .read_text())
        assert saved["dropout"] == 0.0
    assert json.loads((root / "model" / "model_config.json").read_text())["dropout"] == 0.3


def test_a_freeze_path_that_names_nothing_fails_before_any_run(tmp_path, pretrained_root):
    tasks = build(TasksConfig, {"tasks": [TASKS["tasks"][0]]})
    cfg = FinetuneConfig(methods=["full"], baseline=False, epochs=1, threads=1, freeze=["wte", "blocks.99"])
    with pytest.raises(ConfigError, match=r"finetune.freeze: 'blocks.99'.*blocks.0"):
        run(cfg, context(tmp_path, pretrained_root, tasks))
    assert not (tmp_path / "out" / "runs").exists()


def test_aux_lm_on_an_encoder_fails_before_any_run(tmp_path):
    root = make_pretrained(tmp_path / "enc", arch="encoder")
    tasks = build(TasksConfig, {"tasks": [TASKS["tasks"][0]]})
    cfg = FinetuneConfig(methods=["full"], baseline=False, epochs=1, threads=1, aux_lm=0.5)
    with pytest.raises(ConfigError, match=r"finetune.aux_lm: got 0.5 for a model with arch=encoder.*allowed: 0"):
        run(cfg, context(tmp_path, root, tasks))
    assert not (tmp_path / "out" / "runs").exists()


@pytest.mark.parametrize("sets, match", [
    (["finetune.pooling=first"], r"finetune.pooling: got 'first' for a decoder model, allowed: 'auto', 'last'"),
    (["finetune.methods=full,lora", "finetune.lora_targets=attn.qkv,qkv_proj"],
     r"finetune.lora_targets: .*'qkv_proj'; allowed: attn.proj, attn.qkv, mlp.fc, mlp.proj, wte"),
    (["finetune.methods=two_stage", "finetune.then=lora", "finetune.epochs=2", "finetune.lora_targets=mlp.fcc"],
     r"'mlp.fcc'"),
    (["pretrain.model.arch=encoder", "finetune.aux_lm=0.5"], r"finetune.aux_lm: got 0.5 for a model with arch=encoder"),
    (["finetune.reinit_top=3"], r"finetune.reinit_top: got 3, allowed: 0 to the trunk's 2 blocks"),
])
def test_options_the_trunk_cannot_take_fail_at_planning(tmp_path, sets, match):
    """Before pretraining runs: found when the finetune stage started, they cost the pretraining run."""
    from pipeline import config
    from pipeline.plan import make_plan
    cfg = config.load("tiny", overrides=sets)
    with pytest.raises(ConfigError, match=match):
        make_plan(cfg, tmp_path / "work", tmp_path)
    # a stage that will not run is not checked (a cached finetune stage was built with these options)
    plan = make_plan(cfg, tmp_path / "work", tmp_path, until="pretrain")
    assert {p.name: p.action for p in plan}["finetune"] == "skip"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal of a CUDA device this machine lacks")
@pytest.mark.parametrize("key", ["pretrain.device", "finetune.device", "evaluate.device"])
def test_a_device_this_machine_lacks_fails_at_planning_naming_its_key(tmp_path, key):
    """evaluate.device=cuda ran every stage before it, then failed inside evaluate naming pretrain.device."""
    from pipeline import config
    from pipeline.plan import make_plan
    with pytest.raises(ConfigError, match=rf"^{key}: got 'cuda', but no CUDA device is available; allowed: auto, cpu"):
        make_plan(config.load("tiny", overrides=[f"{key}=cuda"]), tmp_path / "work", tmp_path)


def test_classification_macro_f1_leaves_out_labels_neither_gold_nor_predicted():
    """A label of the task that the split never holds and the model never predicts has no F1: counting it as
    0 once gave 0.267 for an accuracy of 0.667 (a stray label in one train row)."""
    from pipeline.finetune.scoring import metrics
    gold = [{"label": x} for x in ("a", "a", "b", "b")]
    got = metrics(gold, [0, 0, 1, 0], ["a", "b", "stray"], "classification", None, detail=True)
    assert got["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert set(got["per_label"]) == {"a", "b", "stray"}  # the per-label table still lists every label


def test_every_metric_names_a_score_of_every_task_kind():
    """Early stopping reads ``metric_for(kind)`` from the scores: ``f1`` on a classification task is its
    macro-F1 (it once failed at the first validation with a KeyError)."""
    from typing import get_args

    from pipeline.finetune.config import Metric
    from pipeline.finetune.scoring import metrics
    scores = {"classification": metrics([{"label": "a"}, {"label": "b"}], [0, 0], ["a", "b"], "classification", None),
              "tagging": metrics([{"tags": ["B-X", "O"]}], [[1, 0]], ["O", "B-X", "I-X"], "tagging", "BIO")}
    for metric in get_args(Metric):
        cfg = build(FinetuneConfig, {"metric": metric})
        for kind, got in scores.items():
            assert cfg.metric_for(kind) in {*got, "loss"}, (metric, kind)
    assert build(FinetuneConfig, {"metric": "f1"}).metric_for("classification") == "macro_f1"
    assert build(FinetuneConfig, {"metric": "f1"}).metric_for("tagging") == "f1"


def test_a_published_finetune_output_lists_the_runs_of_its_manifest(tmp_path):
    """A run folder copied in afterwards once became a row of the report (or crashed evaluate)."""
    import shutil

    from pipeline.store import Workspace
    ws = Workspace(tmp_path, "finetune", "k1")
    out = ws.open(fresh=True)
    run_dir = out / "runs" / "t" / "full-pretrained-s0"
    run_dir.mkdir(parents=True)
    (run_dir / "result.json").write_text(json.dumps({"task": "t", "method": "full", "init": "pretrained", "seed": 0}))
    assert [r["seed"] for r in list_runs(out)] == [0]  # being written: what is on disk
    m = ws.publish("1", {}, {}, {}, None, 0.1)
    shutil.copytree(m.path / "runs" / "t" / "full-pretrained-s0", m.path / "runs" / "t" / "lora-pretrained-s7")
    assert [r["run_dir"] for r in list_runs(m.path)] == [str(m.path / "runs" / "t" / "full-pretrained-s0")]


