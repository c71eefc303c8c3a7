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
from pipeline.finetune.reports import report_files
from pipeline.finetune.reuse import (RUN_FILES, RUN_KEY, adopt, run_key, run_settings, task_digests,
                                     trunk_digests)
from pipeline.stage import StageContext
from pipeline.store import Manifest, Workspace, validate
from pipeline.tasks import TasksConfig

CFG = FinetuneConfig(methods=["full", "lora"], epochs=2, batch_size=16, max_len=48, threads=1, lora_r=4,
                     device="cpu")  # (a run key holds the thread count on CPU only)
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
    timed = ("result.json", RUN_FILES)  # a run's seconds, and the seal listing its result's digest
    digests = lambda m: {k: v["digest"] for k, v in m.files.items() if not k.endswith(timed)}
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
    if damage == "truncated":  # the output's sizes no longer match; this run's own files decide, not the output's
        weights.write_bytes(data[:-8])
    else:  # the sizes match, this run's digest does not
        data[-5] ^= 0xFF
        weights.write_bytes(bytes(data))
    m = stage(copy, "c", CHANGED, pretrained_root)
    assert m.stats["runs_reused"] == 3  # the full and scratch runs but the damaged one
    assert "ner/full-pretrained-s0" not in [f"{r['task']}/{Path(r['run_dir']).name}" for r in list_runs(m.path)
                                            if (Path(r["run_dir"]) / "model" / "model.safetensors").samefile(weights)]


def test_a_damaged_output_rebuilt_keeps_its_intact_runs(donor, pretrained_root, tmp_path):
    """A deleted report of one run retrained all 16 runs of a tester's output, though the others were intact."""
    root, a = donor
    copy = tmp_path / "copy"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("b", "c"))
    own = copy / "work" / "finetune" / "a"
    (own / "reports" / "ner" / "full-pretrained-s0.per_label.json").unlink()
    assert validate(own)[0] is None
    notes: list[str] = []
    m = stage(copy, "a", CFG, pretrained_root, notes)
    assert m.stats["runs_reused"] == 5 and m.stats["runs"] == 6  # all but the run whose report went
    assert (m.path / "reports" / "ner" / "full-pretrained-s0.per_label.json").is_file()
    assert validate(m.path, deep=True)[0] is not None


def test_a_donor_whose_manifest_blessed_a_change_is_not_used(donor, pretrained_root, tmp_path):
    """A file that changed between a run's seal and its output's publishing is in the manifest as it is: the
    manifest validates, but it disagrees with the run's seal, and that run is not reused."""
    from pipeline.store import file_digest
    root, a = donor
    copy = tmp_path / "copy"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("b", "c"))
    donor_dir = copy / "work" / "finetune" / "a"
    _flip(donor_dir / WEIGHTS)
    manifest = json.loads((donor_dir / "manifest.json").read_text())
    manifest["files"][WEIGHTS.as_posix()]["digest"] = file_digest(donor_dir / WEIGHTS)
    (donor_dir / "manifest.json").write_text(json.dumps(manifest))
    assert validate(donor_dir, deep=True)[0] is not None
    notes: list[str] = []
    m = stage(copy, "h", CHANGED, pretrained_root, notes)
    assert m.stats["runs_reused"] == 3
    assert "ner full-pretrained-s0" not in " ".join(n for n in notes if "reused from" in n)
    assert any(n.startswith("1 matching run(s) of earlier outputs not reused") for n in notes)


def test_a_forced_rerun_trains_every_run_again(donor, pretrained_root, tmp_path):
    """``--from finetune`` (or a stage selected to rerun) starts over: its own earlier output and the others
    are not reused."""
    root, a = donor
    copy = tmp_path / "copy"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("b", "c"))
    notes: list[str] = []
    assert stage(copy, "d", CFG, pretrained_root, notes, fresh=True).stats["runs_reused"] == 0
    assert notes == ["6 run(s) match runs of earlier outputs but are trained again: a forced rerun (--force, "
                     "--stage, --from) reuses nothing; without it they would be reused"]
    assert stage(copy, "e", CFG, pretrained_root).stats["runs_reused"] == 6


def test_another_thread_count_is_named_when_it_blocks_reuse(donor, pretrained_root, tmp_path):
    root, a = donor
    copy = tmp_path / "copy"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("b", "c"))
    notes: list[str] = []
    assert stage(copy, "t", dataclasses.replace(CFG, threads=2), pretrained_root, notes).stats["runs_reused"] == 0
    assert notes == ["6 run(s) match runs of earlier outputs trained with 1 thread(s) each, but this one gives each "
                     "run 2 (the thread count changes float rounding): set finetune.threads: 1 to reuse them"]


def _flip(path: Path) -> None:
    """Damage a file in place, its size kept: every hard link to it sees the change."""
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    with open(path, "r+b") as f:
        f.write(bytes(data))


WEIGHTS = Path("runs/ner/full-pretrained-s0/model/model.safetensors")


def test_a_resumed_stage_keeps_only_intact_runs_of_its_key(donor, pretrained_root, tmp_path):
    """A killed attempt had linked two runs in from output a; since then a's copy of one changed (shared with
    the partial, same inode) and the other's key is not this run's: both are trained again (or reused from an
    intact donor), and the published output holds what training gives."""
    root, a = donor
    copy = tmp_path / "copy"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("b", "c"))
    donor_dir = copy / "work" / "finetune" / "a"
    pristine = (donor_dir / WEIGHTS).read_bytes()
    partial = Workspace(copy / "work", "finetune", "f").open(fresh=False)
    for name in ("full-pretrained-s0", "full-scratch-s0"):
        adopt(donor_dir / "runs" / "ner" / name, partial, "ner", name, report_files("tagging", name))
    assert (partial / WEIGHTS).stat().st_ino == (donor_dir / WEIGHTS).stat().st_ino
    _flip(donor_dir / WEIGHTS)
    other_key = partial / "runs" / "ner" / "full-scratch-s0" / RUN_KEY
    other_key.unlink()  # a linked file: replaced, not written through to the donor
    other_key.write_text("0123456789abcdef\n")
    notes: list[str] = []
    m = stage(copy, "f", CHANGED, pretrained_root, notes)
    assert m.stats["runs_resumed"] == 0 and m.stats["runs_reused"] == 3  # ner scratch from a again; stdlib full runs
    assert any(n.startswith("ner full-pretrained-s0: finished by an earlier attempt, but model/model.safetensors "
                            "changed after the run finished: trained again") for n in notes)
    assert any(n.startswith("ner full-scratch-s0: finished by an earlier attempt, but it was trained under another "
                            "run key (0123456789abcdef, now ") for n in notes)
    assert any(n.startswith("1 matching run(s) of earlier outputs not reused: their files do not match their "
                            "manifests (a ner full-pretrained-s0)") for n in notes)
    assert validate(m.path, deep=True)[0] is not None
    assert (m.path / WEIGHTS).read_bytes() == pristine  # trained again, as it was trained the first time


def test_a_run_whose_donor_changes_before_publishing_is_trained_again(donor, pretrained_root, tmp_path, monkeypatch):
    """Between linking a run in and publishing, the donor's file (the same inode) is damaged: the stage checks its
    runs against their seals before it publishes and trains that one again."""
    import pipeline.finetune.stage as stage_mod
    root, a = donor
    copy = tmp_path / "copy"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("b", "c"))
    donor_dir = copy / "work" / "finetune" / "a"
    pristine = (donor_dir / WEIGHTS).read_bytes()

    def adopt_then_damage(run_dir, out, task, name, reports):
        result = adopt(run_dir, out, task, name, reports)
        if (task, name) == ("ner", "full-pretrained-s0"):
            _flip(run_dir / "model" / "model.safetensors")
        return result

    monkeypatch.setattr(stage_mod, "adopt", adopt_then_damage)
    notes: list[str] = []
    m = stage(copy, "g", CHANGED, pretrained_root, notes)
    assert "ner full-pretrained-s0: model/model.safetensors changed after the run finished: trained again" in notes
    assert m.stats["runs_reused"] == 3  # of the 4 linked in, one was trained after all
    assert validate(m.path, deep=True)[0] is not None
    assert (m.path / WEIGHTS).read_bytes() == pristine
    assert json.loads((m.path / "runs" / "ner" / "full-pretrained-s0" / RUN_FILES).read_text())


def test_the_run_key_follows_what_the_run_reads(donor, pretrained_root):
    root, a = donor
    task, model = a.path / "tasks" / "ner", pretrained_root / "model"
    tok = model / "tokenizer" / "tokenizer.model"

    def key(cfg=CFG, spec=("full", "pretrained", 0), version=VERSION, task_dir=task, max_len=48, threads=1,
            kind="tagging"):
        return run_key(cfg, version, spec, task_digests(task_dir), trunk_digests(model, tok), max_len, "cpu", threads,
                       kind)

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
    pooled = dataclasses.replace(CFG, pooling="max")  # a tagger pools nothing: its run keys ignore pooling
    default = FinetuneConfig().pooling  # pinned, not left out: the tagging runs trained before keep their keys
    assert run_settings(pooled, "full")["pooling"] == "max" and run_settings(pooled, "full", "tagging")["pooling"] == \
        default == run_settings(CFG, "full", "tagging")["pooling"]
    assert key(pooled) == key() and key(pooled, kind="classification") != key(kind="classification")


def test_a_task_naming_one_file_for_two_splits_is_noted():
    """Its test figures would measure what was trained on: the stage says so (a tester saw no warning)."""
    from pipeline.finetune.stage import _shared_files
    from pipeline.tasks import TaskConfig
    task = lambda **kw: build(TaskConfig, {"name": "t", "source": "files", **kw})
    assert _shared_files(task(train="a.tsv", test="./a.tsv")) == "train and test"
    assert _shared_files(task(train="a.tsv", validation="b.tsv", test="b.tsv")) == "validation and test"
    assert _shared_files(task(train="a.tsv", test="b.tsv")) == ""
