"""A temporary Prefect API server for one ``lmforge run``, started before prefect is imported.

With no ``PREFECT_API_URL``, Prefect starts the same server itself at the first flow run and waits
~8 s for it, after importing all of ``prefect.server`` into our process. Starting the server process
first, from the command line Prefect uses, lets its start-up overlap with ours (imports, MLflow,
store checks) on the other core, and keeps the server's modules out of our process. The run then
talks to it as to any configured server, and stops it at exit. A user's own PREFECT_API_URL wins.
"""
from __future__ import annotations

import atexit
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path


SETUP_WAIT = 120.0  # seconds: then this server starts anyway (a server start takes ~5 s)


class TemporaryServer:
    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        spec = importlib.util.find_spec("prefect")
        assert spec and spec.submodule_search_locations, "prefect is not installed"
        app_dir = str(Path(list(spec.submodule_search_locations)[0]).parent)
        environ = dict(os.environ, PREFECT_UI_ENABLED="0", PREFECT__SERVER_EPHEMERAL="1",
                       PREFECT__SERVER_FINAL="1")
        environ.pop("PREFECT_API_URL", None)
        # The server's own output goes to a file: a pipe nobody reads would block it once full.
        home = Path(environ.get("PREFECT_HOME", Path.home() / ".prefect"))
        home.mkdir(parents=True, exist_ok=True)
        # One server at a time migrates the shared database: runs started together raced on it (Alembic's
        # "expected to match one row", a server exiting with code 3). Held until this server answers.
        from pipeline import locks
        self._guard = threading.Lock()
        self._setup: int | None = locks.acquire(
            home / "lmforge-server-start.lock", timeout=SETUP_WAIT, on_wait=lambda: print(
                "lmforge: waiting for another lmforge run's Prefect server to start", file=sys.stderr, flush=True))
        try:
            self.log_path = home / "server.log"
            self._log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--app-dir", app_dir, "--factory",
                 "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(self.port),
                 "--log-level", "error", "--lifespan", "on"],
                env=environ, stdout=self._log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
                # its own session: Ctrl-C reaches our process group, not the server, which must outlive the
                # interrupted flow long enough to record its end (a killed server made the client retry for ~70 s)
                start_new_session=True)
        except BaseException:
            self.release_start_lock()
            raise
        atexit.register(self.stop)
        # the lock goes as soon as the server answers (or dies), not when this run gets round to waiting for it
        threading.Thread(target=self._answers, args=(SETUP_WAIT,), daemon=True).start()

    def _answers(self, timeout: float) -> bool:
        """Poll until the server answers (True), exits or ``timeout`` passes (False); its start lock goes."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with urllib.request.urlopen(f"{self.url}/health", timeout=1) as r:
                        if r.status == 200:
                            return True
                except OSError:
                    pass
                time.sleep(0.05)
            return False
        finally:
            self.release_start_lock()

    def wait(self, timeout: float = 120.0) -> None:
        if self._answers(timeout):
            return
        if self.proc.poll() is not None:
            err = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the temporary Prefect server exited with code {self.proc.returncode} "
                               f"(log: {self.log_path}): {err}")
        raise RuntimeError(f"the temporary Prefect server did not answer on {self.url} within {timeout:.0f}s")

    def release_start_lock(self) -> None:
        """Let another run start its server (this one answers, or will not be waited for). Once only, from
        whichever thread gets here first."""
        with self._guard:
            fd, self._setup = self._setup, None
        if fd is not None:
            from pipeline import locks
            locks.release(fd)

    def stop(self) -> None:
        self.release_start_lock()
        if os.environ.get("PREFECT_API_URL") == self.url:  # no later run in this process may look for it
            del os.environ["PREFECT_API_URL"]
        self._log.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _die_with_parent() -> None:
    """Linux: the server gets SIGTERM when our process dies, however it dies (kill -9 included)."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: atexit still stops it on a normal exit


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_if_needed() -> TemporaryServer | None:
    """Start a temporary server and point PREFECT_API_URL at it, unless the user has a server."""
    if os.environ.get("PREFECT_API_URL"):
        return None
    server = TemporaryServer()
    os.environ["PREFECT_API_URL"] = server.url
    return server
