"""Check: a GPU check's figures, log and deadline; each section's result is saved to ``gpu_check.json`` as it ends."""
from __future__ import annotations

import gc
import json
import time
import traceback
from pathlib import Path

import torch


class Check:
    """Figures, a log and a deadline; every section's result is saved as soon as it is recorded."""

    def __init__(self, out: Path, budget: float, smoke: bool) -> None:
        self.out, self.smoke = out, smoke
        self.deadline = time.monotonic() + budget
        self.result: dict = {"bench": "gpu_check", "smoke": smoke, "sections": {}}
        out.mkdir(parents=True, exist_ok=True)
        self.log_file = open(out / "gpu_check.log", "a")

    def log(self, msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        self.log_file.write(line + "\n")
        self.log_file.flush()

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def section(self, name: str, need: float, fn, *args) -> dict:
        """Run ``fn(*args)`` unless fewer than ``need`` seconds remain; record its dict or its error."""
        if self.left() < need:
            res = {"skipped": f"time budget: {self.left():.0f}s left, needs ~{need:.0f}s"}
        else:
            t0 = time.monotonic()
            self.log(f"== {name} (budget left {self.left():.0f}s)")
            try:
                res = fn(*args)
            except Exception as e:  # a failed section must not cost the others their turn
                res = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-3000:]}
            res["seconds"] = round(time.monotonic() - t0, 1)
            gc.collect()
            torch._dynamo.reset()  # compiled graphs hold on to the section's models
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        self.log(f"{name}: {json.dumps({k: v for k, v in res.items() if k != 'traceback'}, default=str)[:2000]}")
        self.result["sections"][name] = res
        self.save()
        return res

    def save(self) -> None:
        tmp = self.out / ".gpu_check.json.tmp"
        tmp.write_text(json.dumps(self.result, indent=1, default=str) + "\n")
        tmp.replace(self.out / "gpu_check.json")
