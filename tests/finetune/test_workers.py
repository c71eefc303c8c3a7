"""Fine-tuning's worker processes: they end with the stage's process."""
from __future__ import annotations

from pathlib import Path


def test_workers_end_when_the_stage_process_is_killed(tmp_path):
    """kill -9 of `lmforge run` once left the pool's workers finishing their runs into the partial folder that
    the rerun resumes from (they are children of the fork server, which outlives the stage's process)."""
    import os
    import signal
    import subprocess
    import sys
    import time
    script = tmp_path / "stage.py"
    script.write_text(
        "import multiprocessing, os, sys, time\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from pipeline.finetune import stage\n"
        "if __name__ == '__main__':\n"
        "    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context('forkserver'),\n"
        "                               initializer=stage._worker_start, initargs=(1, os.getpid()))\n"
        "    print(pool.submit(os.getpid).result(), flush=True)\n"
        "    pool.submit(time.sleep, 60)\n"
        "    time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=Path.cwd(),
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    worker = int(proc.stdout.readline())
    from pipeline.finetune.stage import _alive
    assert _alive(worker) and not _alive(2 ** 22 + 7)
    os.kill(proc.pid, signal.SIGKILL)  # not reaped yet: a zombie, which counts as gone
    deadline = time.time() + 10
    while _alive(worker) and time.time() < deadline:
        time.sleep(0.1)
    proc.wait()
    assert not _alive(worker)
