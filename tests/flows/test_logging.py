"""Prefect's log of a failed stage: a user's bad input is left to the CLI's one line, a bug keeps its traceback."""
from __future__ import annotations

import importlib
import json
import logging

import pytest


def logged(exc: Exception) -> str:
    importlib.import_module("flows.pipeline")  # installs the filter
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record): lines.append(logging.Formatter().format(record))

    logger = logging.getLogger("prefect.task_runs")
    handler, level, propagate = Keep(), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.ERROR)
    logger.propagate = False
    try:
        try:
            raise exc
        except Exception:
            logger.error("Task run failed with exception: %r", exc, exc_info=True)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
    return "\n".join(lines)


@pytest.mark.parametrize("make", ["task", "ingest", "config", "tokens"])
def test_user_errors_are_left_to_the_cli(make):
    """The CLI prints a user error once (``lmforge: error: ...``); Prefect's three records of it went before."""
    from pipeline.configtypes import ConfigError
    from pipeline.ingest.readers import IngestError
    from pipeline.loader.batches import NotEnoughTokens
    from pipeline.tasks.readers import TaskError
    exc = {"task": TaskError, "ingest": IngestError, "config": ConfigError, "tokens": NotEnoughTokens}[make](
        "no usable rows in bad.csv")
    assert logged(exc) == ""
    flow = importlib.import_module("flows.pipeline")
    keep = next(f for f in logging.getLogger("prefect.flow_runs").filters
                if isinstance(f, flow._NoTracebackForUserErrors))
    state = f"Finished in state Failed('Task run encountered an exception {type(exc).__name__}: no usable rows')"
    assert not keep.filter(logging.LogRecord("prefect.flow_runs", logging.ERROR, __file__, 1, state, None, None))


def test_a_bug_keeps_its_traceback():
    text = logged(KeyError("oops"))
    assert "KeyError('oops')" in text and "Traceback (most recent call last)" in text
    text = logged(ValueError("unexpected ConfigError('x') while merging"))  # its message names a user error
    assert "Traceback (most recent call last)" in text


def test_ctrl_c_reaches_the_run_not_its_temporary_server():
    """The server sits in its own session: Ctrl-C to the run's process group once killed it first, and the
    interrupted flow's client then retried it for ~70 s before exiting with a ConnectError traceback."""
    import os

    from flows.server import TemporaryServer
    server = TemporaryServer()
    try:
        assert os.getsid(server.proc.pid) == server.proc.pid != os.getsid(0)
    finally:
        server.stop()


def test_an_interrupted_command_says_how_to_resume(monkeypatch, capsys, tmp_path):
    from flows import cli

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "cmd_run", interrupted)
    assert cli.main(["run", "--preset", "tiny"]) == 130
    assert "interrupted; lmforge run with the same config resumes" in capsys.readouterr().err
    monkeypatch.setattr(cli, "cmd_status", interrupted)  # a command that builds nothing has nothing to resume
    assert cli.main(["status", "--preset", "tiny"]) == 130
    assert capsys.readouterr().err == "lmforge: interrupted\n"


def test_a_terminated_command_says_how_to_resume(monkeypatch, capsys, tmp_path):
    """SIGTERM (a scheduler's stop, `kill`) ended a run with Prefect's crash lines only; Ctrl-C got a message."""
    import os
    import signal

    from flows import cli

    def terminated(*args):
        os.kill(os.getpid(), signal.SIGTERM)  # the handler main installed raises SystemExit(143) here
        raise AssertionError("SIGTERM did not end the command")

    previous = signal.getsignal(signal.SIGTERM)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "cmd_run", terminated)
    monkeypatch.setattr(cli, "_terminated", False)
    try:
        with pytest.raises(SystemExit) as exit_:
            cli.main(["run", "--preset", "tiny"])
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert exit_.value.code == 143
    assert "terminated (SIGTERM); lmforge run with the same config resumes" in capsys.readouterr().err


def test_an_errors_notes_are_printed(monkeypatch, capsys, tmp_path):
    """The runner adds a note to a stage's error when it resumed kept files (what to do if one is damaged)."""
    from flows import cli

    def failing(*args):
        e = ValueError("File is too small: 8")
        e.add_note("the dedup stage resumed 3 file(s) of an interrupted run in x; if one is damaged, ...")
        raise e

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "cmd_status", failing)
    assert cli.main(["status", "--preset", "tiny"]) == 2
    assert capsys.readouterr().err.splitlines()[-2:] == [
        "lmforge: error: File is too small: 8",
        "the dedup stage resumed 3 file(s) of an interrupted run in x; if one is damaged, ..."]


def test_prefects_crash_lines_for_ctrl_c_are_left_to_the_cli():
    """Ctrl-C printed three "Crash detected! Execution was aborted by an interrupt signal." ERROR lines before
    the CLI's own one-line message; a real crash message stays."""
    flow = importlib.import_module("flows.pipeline")
    keep = next(f for f in logging.getLogger("prefect.flow_runs").filters  # (Prefect adds filters of its own)
                if isinstance(f, flow._NoTracebackForUserErrors))
    record = lambda msg: logging.LogRecord("prefect.flow_runs", logging.ERROR, __file__, 1, msg, None, None)
    assert not keep.filter(record("Crash detected! Execution was aborted by an interrupt signal."))
    assert not keep.filter(record("Crash detected! Execution was aborted by a termination signal."))
    assert keep.filter(record("Crash detected! Execution was interrupted by an unexpected exception: X"))


@pytest.mark.e2e
def test_lmforge_run_stopped_by_sigterm_says_how_to_resume(tmp_path):
    """The whole path: Prefect's own SIGTERM handler runs inside the flow and hands the signal back to the CLI's."""
    import os
    import signal
    import subprocess
    import sys
    import time
    env = {**os.environ, "LMFORGE_ROOT": str(tmp_path), "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "flows.cli", "run", "--preset", "tiny", "--no-tracking"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not list((tmp_path / "data" / "work").glob("clean/*/manifest.json")):
        time.sleep(0.2)  # a stage or two done: the flow and its tasks are running
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, (out, err)
    assert "lmforge: terminated (SIGTERM); lmforge run with the same config resumes" in err
    assert "Crash detected" not in out + err


def test_two_runs_started_together_in_one_fresh_root(tmp_path):
    """Both raced on creating Prefect's and MLflow's databases (a server exiting with code 3, tracking off), and
    the second took the first's ingest folder, being written, for an interrupted run's: it resumed it and
    published 2 of its 3 shards, and every later stage read 70 of 120 documents."""
    import os
    import subprocess
    import sys
    env = {**os.environ, "LMFORGE_ROOT": str(tmp_path), "PYTHONPATH": os.pathsep.join(sys.path),
           "PREFECT_HOME": str(tmp_path / ".prefect")}
    cmd = [sys.executable, "-m", "flows.cli", "run", "--preset", "tiny", "--until", "clean"]
    procs = [subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert "tracking is off" not in out + err
    (ingest,) = (tmp_path / "data" / "work" / "ingest").glob("*/manifest.json")
    (clean,) = (tmp_path / "data" / "work" / "clean").glob("*/manifest.json")
    m, c = json.loads(ingest.read_text()), json.loads(clean.read_text())
    assert len([f for f in m["files"] if f.startswith("docs/")]) == m["stats"]["shards"] == 3
    assert c["stats"]["docs_in"] == m["stats"]["docs"] == 120
    assert not list((tmp_path / "data" / "work").glob("*/*.partial"))
    verify = subprocess.run([*cmd[:3], "status", "--preset", "tiny", "--verify"], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # the stages not built yet read as plain status has them, not as a folder with no manifest (it has no folder)
    assert "missing (not built yet)" in verify.stdout and "no valid manifest" not in verify.stdout
    if any("built by another process" in err for _, err in outs):  # (when one run took the other's output)
        again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert again.returncode == 0 and "cached (" in again.stderr  # a plain cache hit now: no other process
        assert "another process" not in again.stderr, again.stderr


def test_a_config_error_lets_the_next_run_start_its_server(tmp_path, monkeypatch, capsys):
    """A run stopped by a config error kept its Prefect server's start lock until the process exited: the next
    run in the same process (a notebook, this suite) waited for it for ever."""
    import os
    from pathlib import Path

    from flows.cli import main
    from pipeline import locks
    monkeypatch.setenv("LMFORGE_ROOT", str(tmp_path))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert main(["run", "--preset", "tiny", "--set", "pretrain.lr=inf"]) == 2
    assert "pretrain.lr: got 'inf', expected a finite number" in capsys.readouterr().err
    assert not locks.held_elsewhere(Path(os.environ["PREFECT_HOME"]) / "lmforge-server-start.lock")
    assert "PREFECT_API_URL" not in os.environ  # (it named the server, stopped: the next run starts its own)
