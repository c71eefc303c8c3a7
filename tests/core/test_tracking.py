from __future__ import annotations

import subprocess
import sys

from helpers import REPO
from pipeline.tracking import MlflowSession, NullTracker, metric_name, numeric_metrics


def test_metric_names_and_numbers():
    assert metric_name("cluster_size_histogram.65+") == "cluster_size_histogram.65plus"
    assert metric_name("a(b)") == "a_b_"
    stats = {"docs": 3, "ok": True, "name": "x", "nested": {"rate": 0.5, "bad": float("nan")}, "inf": float("inf")}
    assert numeric_metrics(stats) == {"docs": 3.0, "nested.rate": 0.5}


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
