"""`lmforge ui` serves the project's MLflow store on 127.0.0.1."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ui_serves_the_project_store(tmp_path):
    from pipeline.tracking import MlflowSession
    session = MlflowSession(tmp_path)
    run = session.start("pipeline", {"stage": "ingest"})
    run.finish()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.Popen([sys.executable, "-m", "flows.cli", "ui", "--port", str(port)], cwd=tmp_path,
                            env={**env, "PYTHONPATH": os.pathsep.join(sys.path)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the MLflow UI did not come up within 120 s")
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/search", method="POST",
                                     data=json.dumps({"experiment_ids": [session.experiment_id]}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            runs = json.loads(r.read())["runs"]
        assert [x["info"]["run_id"] for x in runs] == [run.run_id]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_ui_on_a_taken_port_fails_naming_it(tmp_path, capsys, monkeypatch):
    """mlflow's server logged "address already in use" and exited 0 after lmforge said the UI was up."""
    from flows import env
    from flows.cli import main
    monkeypatch.setenv("LMFORGE_ROOT", str(tmp_path))
    monkeypatch.setattr(env, "apply", lambda root: None)  # keep this process's environment as it is
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["ui", "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert f"cannot serve on port {port} of 127.0.0.1 (Address already in use)" in err and "--port" in err
    assert "MLflow UI on" not in err
