"""The flow's stage step under the stage-key lock: an output another process builds is waited for, then taken."""
from __future__ import annotations

import subprocess
import sys
import threading
import time

from flows import pipeline as flow
from pipeline import config, locks
from pipeline.plan import compute
from pipeline.store import Workspace

HOLD = ("import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "sys.stdin.readline()\n")


def _setup(tmp_path, monkeypatch):
    cfg = config.load("tiny")
    work = tmp_path / "data" / "work"
    plan = compute(cfg, work, tmp_path)
    monkeypatch.setattr(flow, "_RUN", flow._Run(cfg, plan, tmp_path, work, None, None, {}))
    built = []
    monkeypatch.setattr(flow.runner, "execute", lambda ps, *a, **k: built.append(ps.name) or _publish(work, ps))
    return work, plan[0], built


def _publish(work, ps):
    ws = Workspace(work, ps.name, ps.key)
    (ws.open(fresh=True) / "blob").write_text("x")
    return ws.publish("1", {}, {}, {"docs": 1}, None, 0.0)


def test_an_output_another_process_builds_is_waited_for_then_taken(tmp_path, monkeypatch, capsys):
    work, ps, built = _setup(tmp_path, monkeypatch)
    path = locks.stage_lock_path(work, ps.name, ps.key)
    path.parent.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    got = []
    step = threading.Thread(target=lambda: got.append(flow._stage(ps.name, ps.key, False)))
    step.start()
    deadline = time.monotonic() + 30
    while "waiting: another lmforge process" not in capsys.readouterr().err and time.monotonic() < deadline:
        time.sleep(0.05)  # (capsys: what the step wrote so far)
    assert step.is_alive()  # waiting for the lock, not building
    theirs = _publish(work, ps)  # the other process publishes, then lets go
    holder.communicate("\n", timeout=30)
    step.join(timeout=30)
    assert got == [{**theirs.to_json(), flow.TAKEN: True}] and built == []  # the flow counts it as cached


def test_an_output_planned_damaged_but_repaired_meanwhile_is_taken_not_rebuilt(tmp_path, monkeypatch):
    """Two runs found it damaged; the first rebuilt it before the second got there without waiting: the second
    rebuilt it again, swapping the folder under the first's later stages."""
    work, ps, built = _setup(tmp_path, monkeypatch)
    repaired = _publish(work, ps)
    ps.reason = "damaged output (digest of blob does not match the manifest)"
    assert flow._stage(ps.name, ps.key, False) == {**repaired.to_json(), flow.TAKEN: True} and built == []
    (repaired.path / "blob").write_text("y")  # damaged indeed (same size, other bytes): rebuilt
    flow._stage(ps.name, ps.key, False)
    assert built == [ps.name]


def test_a_stage_whose_input_another_process_builds_says_so(tmp_path):
    """`run --stage finetune` during another run's pretraining advised running pretrain first."""
    import pytest
    from pipeline.plan import PlanError, make_plan
    cfg = config.load("tiny")
    work = tmp_path / "data" / "work"
    pretrain = next(p for p in compute(cfg, work, tmp_path) if p.name == "pretrain")
    with pytest.raises(PlanError, match="with --until pretrain"):
        make_plan(cfg, work, tmp_path, stage="finetune")
    path = locks.stage_lock_path(work, "pretrain", pretrain.key)
    path.parent.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(PlanError, match=f"^stage finetune needs pretrain/{pretrain.key}, which another lmforge "
                           "process is building now: run this command again once it is done$"):
            make_plan(cfg, work, tmp_path, stage="finetune")
    finally:
        holder.communicate("\n", timeout=30)


def test_a_taken_output_says_it_was_built_elsewhere(tmp_path, monkeypatch, capsys):
    """Its seconds are the wait for the other process, not a cache lookup."""
    work, ps, _ = _setup(tmp_path, monkeypatch)
    m = _publish(work, ps)
    flow._say(ps, True, 12.34, m, taken=True)
    flow._say(ps, True, 0.05, m)
    lines = capsys.readouterr().err.splitlines()
    assert "cached (built by another process; waited 12.3s)" in lines[0] and "docs=1" in lines[0]
    assert "cached (0.05s)" in lines[1] and "another process" not in lines[1]
