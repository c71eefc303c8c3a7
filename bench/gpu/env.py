"""The ``env`` section: versions, the device, and which optional packages import (the GPU box may lack some)."""
from __future__ import annotations

import contextlib
import importlib.util
import os
import platform
import subprocess

import torch

OPTIONAL = ("numpy", "pyarrow", "sentencepiece", "safetensors", "matplotlib", "pytest", "yaml", "prefect",
            "mlflow", "datasketch")


def importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def env_section(dev: torch.device) -> dict:
    res = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "device": str(dev), "cpu_count": os.cpu_count(),
           "packages": {m: importable(m) for m in OPTIONAL}}
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        res.update(name=props.name, capability=f"{props.major}.{props.minor}", memory_gib=round(props.total_memory / 2**30, 1),
                   bf16=torch.cuda.is_bf16_supported(), sms=props.multi_processor_count)
        with contextlib.suppress(Exception):
            res["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,clocks.max.sm,power.limit",
                                                "--format=csv,noheader"], capture_output=True, text=True, timeout=20).stdout.strip()
    try:
        importlib.import_module("model")  # (needs safetensors)
        res["model_imports"] = True
    except Exception as e:
        res["model_imports"] = f"{type(e).__name__}: {e}"
    return res
