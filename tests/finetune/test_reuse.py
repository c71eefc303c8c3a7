"""Runs shared between finetune outputs (pipeline.finetune.reuse): a run whose inputs and settings are unchanged
is linked in from a published output, and gives what training it again would."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from finetune.test_stage import TASKS, write_ner
from pipeline.configtypes import build
from pipeline.finetune import VERSION, FinetuneConfig, run
from pipeline.finetune.results import list_runs
from pipeline.finetune.reuse import RUN_KEY, run_key, run_settings, task_digests, trunk_digests
from pipeline.stage import StageContext
from pipeline.store import Manifest, Workspace
from pipeline.tasks import TasksConfig

CFG = FinetuneConfig(methods=["full", "lora"], epochs=2, batch_size=16, max_len=48, threads=1, lora_r=4)
CHANGED = dataclasses.replace(CFG, lora_r=2)  # a LoRA setting: the full runs and the baseline read none


def stage(root: Path, key: str, cfg: FinetuneConfig, pretrained: Path, notes: list | None = None,
          fresh: bool = False) -> Manifest:
    """One finetune stage into ``root/work/finetune/<key>``, published as the runner does (``fresh``: forced)."""
    tasks = build(TasksConfig, TASKS)
    ws = Workspace(root / "work", "finetune", key)
    model = Manifest(stage="pretrain", key="p", version="1", config={}, inputs={}, files={}, path=pretrained)
    ctx = StageContext(name="finetune", key=key, out=ws.open(fresh=False), inputs={"model": model}, root=root,
                       work=root / "work", extra={"tasks": tasks}, fresh=fresh)
    if notes is not None:
        ctx.note = notes.append
    stats = run(cfg, ctx)
    return ws.publish(VERSION, {}, {}, stats, None, 0.0)


@pytest.fixture(scope="module")
def donor(tmp_path_factory, pretrained_root):
    root = tmp_path_factory.mktemp("reuse")
    write_ner(root)
    return root, stage(root, "a", CFG, pretrained_root)


def runs_by_name(m: Manifest) -> dict[str, dict]:
    return {f"{r['task']}/{Path(r['run_dir']).name}": r for r in list_runs(m.path)}


def test_a_lora_setting_changed_retrains_only_the_lora_runs(donor, pretrained_root, tmp_path):
    root, a = donor
    notes: list[str] = []
    b = stage(root, "b", CHANGED, pretrained_root, notes)
    assert b.stats["runs"] == 6 and b.stats["runs_reused"] == 4  # full and full-scratch of both tasks
    assert len(notes) == 1 and notes[0].startswith(f"4 of 6 runs reused from {a.path} ")
    old, new = runs_by_name(a), runs_by_name(b)
    for name in ("ner/full-pretrained-s0", "ner/full-scratch-s0", "stdlib_area/full-scratch-s0"):
        src, dst = Path(old[name]["run_dir"]), Path(new[name]["run_dir"])
        assert (dst / "result.json").read_text() == (src / "result.json").read_text()
        assert (dst / "model" / "model.safetensors").read_bytes() == (src / "model" / "model.safetensors").read_bytes()
    for name in ("ner/lora-pretrained-s0", "stdlib_area/lora-pretrained-s0"):  # trained again, under a new key
        assert (Path(new[name]["run_dir"]) / RUN_KEY).read_text() != (Path(old[name]["run_dir"]) / RUN_KEY).read_text()
    reports = lambda m: sorted(p.relative_to(m.path).as_posix() for p in (m.path / "reports").rglob("*.p*"))
    assert reports(b) == reports(a)  # the reused runs' confusion matrices and per-label tables came along
    assert (b.path / "reports" / "stdlib_area" / "full-scratch-s0.confusion.png").read_bytes() == \
        (a.path / "reports" / "stdlib_area" / "full-scratch-s0.confusion.png").read_bytes()
    # what the same config trains with nothing to reuse: the same output, file for file
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(root / "ner.conll", alone / "ner.conll")
    fresh = stage(alone, "b", CHANGED, pretrained_root)
    assert fresh.stats["runs_reused"] == 0
    digests = lambda m: {k: v["digest"] for k, v in m.files.items() if not k.endswith("result.json")}
    assert digests(fresh) == digests(b)  # weights, task files, reports
    results = lambda m: {k: {**r, "seconds": 0, "run_dir": ""} for k, r in runs_by_name(m).items()}
    assert results(fresh) == results(b)  # all but the time a run took
    summary = lambda m: json.loads((m.path / "reports" / "summary.json").read_text())
    assert summary(fresh) == summary(b)


@pytest.mark.parametrize("damage", ["truncated", "same size"])
def test_a_damaged_donor_is_not_used(donor, pretrained_root, tmp_path, damage):
    root, a = donor
    copy = tmp_path / "copy"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("b", "c"))
    weights = copy / "work" / "finetune" / "a" / "runs" / "ner" / "full-pretrained-s0" / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    if damage == "truncated":  # every output's sizes no longer match: none of its runs is taken
        weights.write_bytes(data[:-8])
    else:  # the sizes match, this run's digest does not: the others are still taken
        data[-5] ^= 0xFF
        weights.write_bytes(bytes(data))
    reused = stage(copy, "c", CHANGED, pretrained_root).stats["runs_reused"]
    assert reused == (0 if damage == "truncated" else 3)


def test_a_forced_rerun_trains_every_run_again(donor, pretrained_root, tmp_path):
    """``--from finetune`` (or a stage selected to rerun) starts over: its own earlier output and the others
    are not reused."""
    root, a = donor
    copy = tmp_path / "copy"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("b", "c"))
    assert stage(copy, "d", CFG, pretrained_root, fresh=True).stats["runs_reused"] == 0
    assert stage(copy, "e", CFG, pretrained_root).stats["runs_reused"] == 6


def test_the_run_key_follows_what_the_run_reads(donor, pretrained_root):
    root, a = donor
    task, model = a.path / "tasks" / "ner", pretrained_root / "model"
    tok = model / "tokenizer" / "tokenizer.model"

    def key(cfg=CFG, spec=("full", "pretrained", 0), version=VERSION, task_dir=task, max_len=48, threads=1):
        return run_key(cfg, version, spec, task_digests(task_dir), trunk_digests(model, tok), max_len, "cpu", threads)

    assert key() == (Path(runs_by_name(a)["ner/full-pretrained-s0"]["run_dir"]) / RUN_KEY).read_text().strip()
    assert key(CHANGED) == key()  # a LoRA setting, for a full run
    assert key(dataclasses.replace(CFG, seeds=[0, 1], methods=["full"], baseline=False)) == key()  # which runs exist
    lora = ("lora", "pretrained", 0)
    assert key(CHANGED, lora) != key(CFG, lora)
    differ = [key(spec=("full", "pretrained", 1)), key(spec=("full", "scratch", 0)), key(threads=2), key(max_len=32),
              key(dataclasses.replace(CFG, lr=1e-3)), key(dataclasses.replace(CFG, epochs=3)), key(version="x"),
              key(task_dir=a.path / "tasks" / "stdlib_area")]
    assert len({key(), *differ}) == len(differ) + 1
    assert "lora_r" in run_settings(CFG, "lora") and "lora_r" not in run_settings(CFG, "full")
    two = dataclasses.replace(CFG, methods=["two_stage"], then="adapter")
    assert {"head_epochs", "adapter_bottleneck"} <= set(run_settings(two, "two_stage"))
    assert "lora_r" not in run_settings(two, "two_stage")
