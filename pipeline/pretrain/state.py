"""Training state on disk without pickles: model, optimizer, RNG and counters.

A checkpoint folder holds the model (``model.safetensors`` + ``model_config.json`` + ``meta.json``
via ``model.save_model``), ``optimizer.safetensors`` (every tensor of the optimizer's state) and
``trainer.json`` (step, best validation figure, the optimizer's param-group settings, RNG states as
lists of ints). Loading runs no code. The loader needs no state: batches are a pure function of
(seed, step), so the step *is* the loader position.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from model import ModelConfig, save_model

OPTIM, TRAINER = "optimizer.safetensors", "trainer.json"


def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for name, value in st.items():
            if torch.is_tensor(value):
                tensors[f"{pid}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{name}"] = value
    groups = [{k: v for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def load_optimizer(opt: torch.optim.Optimizer, folder: Path, device: torch.device) -> None:
    tensors = load_file(str(folder / OPTIM), device="cpu")
    info = json.loads((folder / TRAINER).read_text())["optimizer"]
    state: dict[int, dict[str, Any]] = {}
    for key, t in tensors.items():
        pid, name = key.split(".", 1)
        # AdamW keeps 'step' on the CPU unless fused/capturable; the others live with the params
        state.setdefault(int(pid), {})[name] = t if name == "step" and t.dim() == 0 and not _on_device_step(opt) \
            else t.to(device)
    for key, v in info["scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": info["param_groups"]})


def _on_device_step(opt: torch.optim.Optimizer) -> bool:
    g = opt.param_groups[0]
    return bool(g.get("fused") or g.get("capturable"))


def save_state(folder: Path, model: torch.nn.Module, cfg: ModelConfig, opt: torch.optim.Optimizer,
               trainer: dict[str, Any], meta: dict[str, Any]) -> None:
    """Write a complete checkpoint to ``folder`` atomically (temp folder, then rename)."""
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    save_model(model, cfg, tmp, extra_meta=meta)
    tensors, info = optimizer_tensors(opt)
    save_file(tensors, str(tmp / OPTIM))
    rng = {"torch": torch.get_rng_state().tolist()}
    if torch.cuda.is_available():
        rng["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    (tmp / TRAINER).write_text(json.dumps({**trainer, "optimizer": info, "rng": rng}, default=float))
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)


def load_trainer(folder: Path) -> dict[str, Any]:
    return json.loads((folder / TRAINER).read_text())


def restore_rng(trainer: dict[str, Any]) -> None:
    torch.set_rng_state(torch.tensor(trainer["rng"]["torch"], dtype=torch.uint8))
    if "cuda" in trainer["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in trainer["rng"]["cuda"]])


def is_complete(folder: Path) -> bool:
    return all((folder / f).exists() for f in ("model.safetensors", "model_config.json", OPTIM, TRAINER))
