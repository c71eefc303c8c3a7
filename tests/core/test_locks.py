"""Locks between lmforge processes sharing a root: a stage key built once at a time, live runs seen by gc."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from pipeline import config, gc, locks
from pipeline.configtypes import to_dict
from pipeline.plan import compute

HOLD = ("import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "sys.stdin.readline()\n"
        "if len(sys.argv) > 2: os.unlink(sys.argv[1])\n")


def _holder(path: Path, unlink: bool = False) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), *(["unlink"] if unlink else [])],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _let_go(proc: subprocess.Popen) -> None:
    proc.stdin.write("\n")
    proc.stdin.flush()
    proc.wait(timeout=30)


def test_a_lock_held_by_another_process_is_seen_and_waited_for(tmp_path):
    path = tmp_path / "x.lock"
    assert not locks.held_elsewhere(path) and not path.exists()  # (looking creates nothing)
    proc = _holder(path)
    try:
        assert locks.held_elsewhere(path)
        assert locks.acquire(path, block=False) is None
        waits = []
        threading.Timer(0.5, _let_go, (proc,)).start()
        fd = locks.acquire(path, on_wait=lambda: waits.append(time.monotonic()))
    finally:
        if proc.poll() is None:
            _let_go(proc)
    assert len(waits) == 1 and not locks.held_elsewhere(tmp_path / "other.lock")
    locks.release(fd)
    assert not locks.held_elsewhere(path)


def test_a_lock_file_removed_while_waited_for_is_not_trusted(tmp_path):
    """The holder removes the file as it lets go: the waiter then holds a lock on a file no one else can see,
    so it locks the one at the path instead."""
    path = tmp_path / "x.lock"
    proc = _holder(path, unlink=True)
    threading.Timer(0.5, _let_go, (proc,)).start()
    fd = locks.acquire(path)
    assert os.fstat(fd).st_ino == os.stat(path).st_ino
    locks.release(fd)


def test_gc_only_current_keeps_what_a_live_run_uses_and_drops_dead_lock_files(tmp_path):
    """`gc --only-current` during a run of another config removed that run's tokenize output under it."""
    root, work = tmp_path, tmp_path / "data" / "work"
    current = config.load("tiny")
    other = config.load("tiny", overrides=["tokenize.vocab_size=900"])
    theirs = {p.name: p.key for p in compute(other, work, root)}
    saved = root / "data" / "runs" / "20260101-000000-123-config.json"
    saved.parent.mkdir(parents=True)
    saved.write_text(json.dumps({"_preset": "tiny", **to_dict(other)}))
    out = work / "tokenize" / theirs["tokenize"]
    out.mkdir(parents=True)
    (out / "blob").write_bytes(b"x")
    dead = locks.stage_lock_path(work, "tokenize", "0123456789abcdef")
    live = locks.stage_lock_path(work, "tokenize", theirs["tokenize"])
    dead.parent.mkdir(parents=True)
    dead.touch()
    live.touch()

    def removed() -> set[Path]:
        return {p for p, _, _ in gc.find(current, root, only_current=True).remove}
    assert removed() == {out, dead, live}  # no run going on: its config is not current
    # what the run planned, noted in its lock: a corpus file edited since gives its config other keys now
    planned = work / "tokenize" / "feedfacefeedface"
    planned.mkdir()
    fd = locks.acquire(tmp_path / "scratch.lock")
    locks.note_plan(fd, {"tokenize": "feedfacefeedface"})
    locks.release(fd)
    locks.run_lock_path(saved).write_bytes((tmp_path / "scratch.lock").read_bytes())
    assert locks.planned_keys(locks.run_lock_path(saved)) == {"tokenize": "feedfacefeedface"}
    proc = _holder(locks.run_lock_path(saved))
    try:
        assert removed() == {dead}
    finally:
        _let_go(proc)
    assert planned in removed()  # the run is over
    busy = _holder(dead)  # a process building (or waiting for) that output holds its lock: it stays
    try:
        assert dead not in removed()
    finally:
        _let_go(busy)
