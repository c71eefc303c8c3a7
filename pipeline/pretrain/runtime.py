"""Device, precision, threads and (optional) DDP for the trainer."""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch


@dataclass
class Runtime:
    device: torch.device
    dtype: str          # "fp32" or "bf16"
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self):
        if self.dtype == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()


def device_error(name: str, key: str = "pretrain.device") -> str | None:
    """Why the device ``name`` (a config's ``key``) cannot be used on this machine, or None."""
    if name == "cuda" and not torch.cuda.is_available():
        return f"{key}: got 'cuda', but no CUDA device is available; allowed: auto, cpu"
    if name == "mps" and not torch.backends.mps.is_available():
        return f"{key}: got 'mps', but MPS is not available; allowed: auto, cpu"
    return None


def pick_device(name: str, key: str = "pretrain.device") -> torch.device:
    if name != "auto":
        if why := device_error(name, key):
            raise ValueError(why)
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def setup(device: str, dtype: str, threads: int, key: str = "pretrain.device") -> Runtime:
    """Pick the device (``key``: the setting that names it, for errors) and precision; join the process group
    when started by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    dev = pick_device(device, key)
    if world > 1:
        import torch.distributed as dist
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
        if dev.type == "cuda":
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(dev)
    if dev.type == "cpu":
        # One thread per core (per process under DDP); more oversubscribes and slows matmuls.
        n = threads or max(1, (os.cpu_count() or 1) // world)
        torch.set_num_threads(n)
    resolved = dtype if dtype != "auto" else ("bf16" if dev.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32")
    set_tf32(dev, resolved != "fp32")
    return Runtime(dev, resolved, rank, world)


def set_tf32(dev: torch.device, on: bool) -> None:
    """TF32 matmuls on a CUDA device, set by every stage that computes there (the flags are the process's: a stage
    run after another would otherwise inherit them): on beside bf16 autocast, off for fp32 figures, whichever
    stage ran before in the same process."""
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = on
        torch.backends.cudnn.allow_tf32 = on


def all_reduce_mean(value: torch.Tensor, rt: Runtime) -> torch.Tensor:
    if rt.world > 1:
        import torch.distributed as dist
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value = value / rt.world
    return value
