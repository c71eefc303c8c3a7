from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import REPO
from pipeline.tracking import MlflowSession, NullTracker, metric_name, numeric_metrics, param_names


def test_metric_names_and_numbers():
    assert metric_name("cluster_size_histogram.65+") == "cluster_size_histogram.65plus"
    assert metric_name("a(b)") == "a_b_"
    stats = {"docs": 3, "ok": True, "name": "x", "nested": {"rate": 0.5, "bad": float("nan")}, "inf": float("inf")}
    assert numeric_metrics(stats) == {"docs": 3.0, "nested.rate": 0.5}


def test_param_names_are_valid_and_distinct():
    """A config key can hold a user's source name ("rules_by_source.notes+2024"), which MLflow once rejected,
    failing the clean stage whenever tracking was on."""
    names = param_names({"rules_by_source.notes+2024": 1, "rules_by_source.notesplus2024": 2, "a" * 300: 3})
    assert list(names)[0] == "rules_by_source.notesplus2024" and len(names) == 3
    assert list(names)[1].startswith("rules_by_source.notesplus2024-") and len(list(names)[2]) == 250
    assert all(metric_name(n) == n for n in names)


def test_unreachable_server_turns_tracking_off(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # the discard port: nothing listens
    session = MlflowSession(tmp_path)
    assert not session.enabled
    assert "tracking is off" in capsys.readouterr().out
    assert isinstance(session.start("x", {}), NullTracker)


def test_missing_mlflow_package_turns_tracking_off(tmp_path):
    code = ("import sys; sys.modules['mlflow'] = None; sys.modules['mlflow.tracking'] = None\n"
            "from pathlib import Path\nfrom pipeline.tracking import MlflowSession\n"
            f"s = MlflowSession(Path({str(tmp_path)!r}))\nprint('enabled', s.enabled)")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("tracking is off") == 1 and "enabled False" in r.stdout


def test_sqlite_store_under_mlruns(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    session = MlflowSession(tmp_path)
    assert session.enabled and (tmp_path / "mlruns" / "mlflow.db").exists()
    run = session.start("stage", {"stage": "clean", "stage.key": "abc", "cached": "false"})
    run.log_metrics({"loss": 1.0}, step=1)
    run.log_metrics({"loss": 0.5}, step=2)
    run.finish()
    history = session.client.get_metric_history(run.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(1, 1.0), (2, 0.5)]
    assert session.find_stage_run("clean", "abc") == run.run_id
    exp = session.client.get_experiment(session.experiment_id)
    assert exp.artifact_location == (tmp_path / "mlruns" / "artifacts").resolve().as_uri()
    # MLflow's empty "Default" experiment (artifacts in the current folder, not the project's) is not shown
    assert [e.name for e in session.client.search_experiments()] == [exp.name]


@pytest.mark.parametrize("links", ["all", "none", "all but the first"])
def test_artifacts_on_a_local_store_are_hard_links(tmp_path, monkeypatch, links):
    """A checkpoint that every reusing output logs again takes its space once (links); where links fail (another
    file system, a link limit), MLflow copies, file by file. Either way MLflow lists and downloads the same files."""
    import os
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    real_link, calls = os.link, []

    def link(src, dst):
        calls.append(src)
        if links == "none" or (links == "all but the first" and len(calls) > 1):
            raise OSError(31, "Too many links")
        real_link(src, dst)

    monkeypatch.setattr(os, "link", link)
    model = tmp_path / "out" / "model"
    (model / "tokenizer").mkdir(parents=True)
    (model / "model.safetensors").write_bytes(b"w" * 100)
    (model / "tokenizer" / "tokenizer.model").write_bytes(b"t" * 10)
    (tmp_path / "out" / "manifest.json").write_text("{}")
    session = MlflowSession(tmp_path / "project")
    run = session.start("stage", {"stage": "finetune"})
    run.log_artifact(model, "checkpoints/t/full-pretrained-s0")
    run.log_artifact(model, "checkpoints/t/full-pretrained-s0")  # again: replaced, not doubled
    run.log_artifact(tmp_path / "out" / "manifest.json")
    run.finish()
    listed = [a.path for a in session.client.list_artifacts(run.run_id, "checkpoints/t/full-pretrained-s0")]
    assert listed == [f"checkpoints/t/full-pretrained-s0/{n}" for n in ("model.safetensors", "tokenizer")]
    assert [a.path for a in session.client.list_artifacts(run.run_id)] == ["checkpoints", "manifest.json"]
    got = Path(session.client.download_artifacts(run.run_id, "checkpoints/t/full-pretrained-s0", str(tmp_path / "dl")))
    assert (got / "tokenizer" / "tokenizer.model").read_bytes() == b"t" * 10
    stored = Path(session.client.get_run(run.run_id).info.artifact_uri.removeprefix("file://"))
    weights = stored / "checkpoints" / "t" / "full-pretrained-s0" / "model.safetensors"
    assert weights.read_bytes() == b"w" * 100
    assert (weights.stat().st_ino == (model / "model.safetensors").stat().st_ino) == (links != "none")
    token = stored / "checkpoints" / "t" / "full-pretrained-s0" / "tokenizer" / "tokenizer.model"
    assert token.read_bytes() == b"t" * 10
    assert (token.stat().st_ino == (model / "tokenizer" / "tokenizer.model").stat().st_ino) == (links == "all")
    assert not [p for p in stored.rglob(".*")]  # no temporary names left


def test_a_stage_failing_after_its_body_leaves_a_failed_run_not_a_running_one(tmp_path, monkeypatch):
    """Only the stage body used to be guarded: an error while publishing (or logging parameters, or
    uploading artifacts) left the stage's MLflow run RUNNING for good."""
    import pytest

    from pipeline import config
    from pipeline.plan import make_plan
    from pipeline.runner import execute
    from pipeline.store import Workspace
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = config.load("tiny")
    work = tmp_path / "data" / "work"
    plan = make_plan(cfg, work, tmp_path)
    session = MlflowSession(tmp_path)
    parent = session.start("pipeline", {})

    def broken_publish(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Workspace, "publish", broken_publish)
    with pytest.raises(OSError, match="disk full"):
        execute(plan[0], cfg, plan, tmp_path, work, session, parent.run_id, fresh=True)
    [child] = [r for r in session.client.search_runs([session.experiment_id]) if r.data.tags.get("stage")]
    assert child.info.status == "FAILED"  # and it says why, where the UI shows it first
    assert child.data.tags["lmforge.error"] == "OSError: disk full"
    assert child.data.tags["mlflow.note.content"] == "**Failed:** OSError: disk full"

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Workspace, "publish", interrupted)  # Ctrl-C: KILLED, not FAILED, and how to go on
    with pytest.raises(KeyboardInterrupt):
        execute(plan[0], cfg, plan, tmp_path, work, session, parent.run_id, fresh=True)
    [killed] = [r for r in session.client.search_runs([session.experiment_id], "attributes.status = 'KILLED'")]
    assert killed.data.tags["lmforge.ended"].startswith("interrupted (Ctrl-C or SIGTERM); the same command resumes")
    assert "lmforge.error" not in killed.data.tags

    class ExternalSignal(BaseException):  # Prefect's, raised inside a flow by its own SIGTERM handler
        pass

    class TerminationSignal(ExternalSignal):
        pass

    def terminated(self, *args, **kwargs):
        raise TerminationSignal(15)

    monkeypatch.setattr(Workspace, "publish", terminated)
    with pytest.raises(TerminationSignal):
        execute(plan[0], cfg, plan, tmp_path, work, session, parent.run_id, fresh=True)
    killed = session.client.search_runs([session.experiment_id], "attributes.status = 'KILLED'")
    assert len(killed) == 2 and all("lmforge.error" not in r.data.tags for r in killed)


def test_final_figures_land_at_the_end_of_their_curve_and_params_are_json(tmp_path, monkeypatch):
    """A stage's closing metrics were logged at step 0: val_loss's curve [15, 30] went back to step 0."""
    from pipeline.tracking import PARAM_CHARS, param_value
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    session = MlflowSession(tmp_path)
    run = session.start("stage", {})
    run.log_metrics({"val_loss": 6.0, "lr": 1e-3}, step=15)
    run.log_metrics({"val_loss": 5.8, "lr": 5e-4}, step=30)
    time.sleep(0.01)  # another timestamp: MLflow would keep a second point at step 30
    run.log_metrics({"val_loss": 5.8, "lr": 0.0, "docs": 3})  # the stage's stats at its end
    run.finish()
    history = session.client.get_metric_history(run.run_id, "val_loss")
    assert [(m.step, m.value) for m in history] == [(15, 6.0), (30, 5.8)]  # not back at step 0, not twice
    assert [(m.step, m.value) for m in session.client.get_metric_history(run.run_id, "lr")] == [
        (15, 1e-3), (30, 5e-4), (30, 0.0)]  # a different closing value stays, at the curve's end
    assert [m.step for m in session.client.get_metric_history(run.run_id, "docs")] == [0]
    assert param_value(["full", "lora"]) == '["full", "lora"]' and param_value(None) == "null"
    assert param_value({"a": 1}) == '{"a": 1}' and param_value(0.5) == "0.5" and param_value("x") == "x"
    assert param_value(True) == "true" and param_value([True]) == "[true]"
    long = param_value([f"/data/file_{i:04d}.txt" for i in range(600)])
    assert len(long) == PARAM_CHARS and long.endswith("characters; whole in the parent run's config.json]")


def test_runs_of_a_killed_process_are_closed_by_the_next_session(tmp_path, monkeypatch):
    """A kill -9 leaves its runs RUNNING for good; the next session marks those of a gone process KILLED and
    leaves a live process's runs alone."""
    import subprocess
    import sys

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    session = MlflowSession(tmp_path)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = session.start("pretrain", {"stage": "pretrain"})
    session.client.set_tag(dead.run_id, "lmforge.pid", gone.stdout.strip())  # its process has exited
    dead.log_metrics({"train_loss": 5.0}, step=1)
    dead.flush()
    last_sign = session.client.get_metric_history(dead.run_id, "train_loss")[0].timestamp
    time.sleep(0.05)
    mine = session.start("dedup", {"stage": "dedup"})  # this pid: a process that had it before us (pid reuse)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = session.start("clean", {"stage": "clean"})
        session.client.set_tag(live.run_id, "lmforge.pid", str(other.pid))  # another live lmforge
        assert MlflowSession(tmp_path).close_orphans() == 2
        assert [session.client.get_run(r.run_id).info.status for r in (dead, mine, live)] == [
            "KILLED", "KILLED", "RUNNING"]
        assert session.client.get_run(dead.run_id).info.end_time == last_sign  # its last sign of life, not now
        assert "logged no metric" in session.client.get_run(mine.run_id).data.tags["lmforge.ended"]
        assert "logged no metric" not in session.client.get_run(dead.run_id).data.tags["lmforge.ended"]
        live.finish()
    finally:
        other.kill()
