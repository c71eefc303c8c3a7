"""Advisory file locks (``flock``) between lmforge processes sharing one project root.

- A stage output's key: one process at a time builds ``<stage>/<key>`` (``stage_lock_path``); a second run of the
  same config waits, then finds the output built instead of resuming a partial folder that is being written.
- A running ``lmforge run`` holds the lock beside its saved config (``run_lock_path``), with its planned keys in it
  (``note_plan``), until it ends: ``gc`` keeps what a live run reads or writes.

The setup locks (a Prefect server's start, MLflow's store) guard against a race, never worth a hang: they are
given up after a while (``timeout``). A lock file is never removed while it may be waited on; ``acquire``
checks that the file it locked is still the one at the path (the classic unlink race) and tries again if not.
"""
from __future__ import annotations

import fcntl
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

LOCKS = ".locks"  # under the store (data/work): stage key locks, out of the <stage>/<key> layout gc reads


def acquire(path: Path, block: bool = True, on_wait: Callable[[], None] | None = None,
            timeout: float | None = None) -> int | None:
    """An exclusive lock on ``path`` (created if need be): its file descriptor, or None when ``block`` is False
    and another holder has it, or when it is still held after ``timeout`` seconds. ``on_wait`` is called once
    before waiting for another holder (another process, or another descriptor of this one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    told, deadline = False, None if timeout is None else time.monotonic() + timeout
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not block:
                os.close(fd)
                return None
            if not _wait_until(fd, time.monotonic() + 0.05, step=0.01):  # (a look, held_elsewhere, takes a moment)
                if on_wait is not None and not told:
                    on_wait()
                    told = True
                if deadline is None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                elif not _wait_until(fd, deadline):
                    os.close(fd)
                    return None
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the file was removed or replaced while we waited: lock the one there now


def _wait_until(fd: int, deadline: float, step: float = 0.1) -> bool:
    while time.monotonic() < deadline:
        time.sleep(step)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
    return False


def release(fd: int) -> None:
    os.close(fd)  # closing the descriptor drops its flock


def held_elsewhere(path: Path) -> bool:
    """Whether another process holds the lock on ``path`` now (a missing file, or one this user cannot open: no;
    read-only: another user's lock file, a read-only store)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def stage_lock_path(work: Path, stage: str, key: str) -> Path:
    return work / LOCKS / f"{stage}-{key}.lock"


@contextmanager
def held(path: Path, on_wait: Callable[[], None] | None = None, timeout: float | None = None) -> Iterator[bool]:
    """Hold the lock on ``path`` for the block (``acquire``); the block runs unlocked, told False, when ``timeout``
    passes first."""
    fd = acquire(path, on_wait=on_wait, timeout=timeout)
    try:
        yield fd is not None
    finally:
        if fd is not None:
            release(fd)


def note_plan(fd: int, keys: dict[str, str]) -> None:
    """Write a live run's planned ``{stage: key}`` into its run lock (``gc`` reads it: keys computed again from
    files edited since the run planned would miss the outputs it uses)."""
    data = json.dumps(keys).encode()
    os.ftruncate(fd, 0)
    done = 0
    while done < len(data):  # (a reader meanwhile sees a prefix: not JSON, read as {})
        done += os.pwrite(fd, data[done:], done)


def planned_keys(lock: Path) -> dict[str, str]:
    """The keys a live run noted (``note_plan``), or {} (none yet, or a lock file of another kind)."""
    try:
        keys = json.loads(lock.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in keys.items()} if isinstance(keys, dict) else {}


def run_lock_path(config_file: Path) -> Path:
    """The lock a live ``lmforge run`` holds beside its saved config (``data/runs/<stamp>-config.json``)."""
    return config_file.with_name(config_file.name + ".lock")
