"""Save and load models as safetensors + JSON: loading runs no code and unpickles nothing.

A folder holds
    model.safetensors     weights; a tied tensor is stored once, under its first name
    model_config.json     exactly `ModelConfig.to_dict()`
    meta.json             model class, its extra constructor arguments, tied aliases, the LoRA /
                          adapter layout (re-applied before loading), caller's meta
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from model.adapters import AdaptedEmbedding, apply_adapters
from model.causal_lm import CausalLM
from model.config import ModelConfig
from model.heads import SequenceClassifier, TokenClassifier
from model.layers import Block
from model.lora import LoRAEmbedding, LoRALinear, apply_lora
from model.masked_lm import MaskedLM
from model.seq2seq import Seq2SeqLM
from model.transformer import Transformer

WEIGHTS, CONFIG, META = "model.safetensors", "model_config.json", "meta.json"
FORMAT_VERSION = 1


def _build(name: str, cfg: ModelConfig, kwargs: dict[str, Any]) -> nn.Module:
    if name in ("SequenceClassifier", "TokenClassifier"):
        cls = SequenceClassifier if name == "SequenceClassifier" else TokenClassifier
        return cls(Transformer(cfg), **kwargs)
    families = {"CausalLM": CausalLM, "MaskedLM": MaskedLM, "Seq2SeqLM": Seq2SeqLM, "Transformer": Transformer}
    if name not in families:
        raise ValueError(f"cannot rebuild model class {name!r}; known: {sorted(families) + ['SequenceClassifier', 'TokenClassifier']}")
    return families[name](cfg)


def _constructor_kwargs(module: nn.Module) -> dict[str, Any]:
    head = {} if getattr(module, "head_kind", "linear") == "linear" else {"head": module.head_kind}
    if isinstance(module, SequenceClassifier):
        return {"n_labels": module.n_labels, "pooling": module.pooling, "dropout": module.dropout, **head}
    if isinstance(module, TokenClassifier):
        return {"n_labels": module.n_labels, "dropout": module.dropout, **head}
    return {}


def _peft_layout(module: nn.Module) -> dict[str, Any]:
    """What LoRA / adapter surgery was applied, so `load_model` can redo it before loading."""
    layout: dict[str, Any] = {}
    lora = {_clean_name(n): m for n, m in module.named_modules() if isinstance(m, (LoRALinear, LoRAEmbedding))}
    if lora:
        first = next(iter(lora.values()))
        drops = [m.lora_drop.p for m in lora.values() if isinstance(m, LoRALinear)]
        layout["lora"] = {"targets": sorted(lora), "r": first.r, "alpha": first.alpha,
                          "dropout": drops[0] if drops else 0.0}
        if any((m.r, m.alpha) != (first.r, first.alpha) for m in lora.values()):
            raise ValueError("save_model: LoRA layers with different r/alpha cannot be recorded")
    adapters = {
        place: a for b in module.modules() if isinstance(b, Block)
        for place in ("attn", "mlp") if (a := getattr(b, f"adapter_{place}")) is not None
    }
    adapters.update({"embed": m.adapter_embed for m in module.modules() if isinstance(m, AdaptedEmbedding)})
    if adapters:
        first = next(iter(adapters.values()))
        layout["adapters"] = {"bottleneck": first.down.out_features, "where": sorted(adapters)}
        if (first.form, first.scale) != ("sequential", 1.0):
            layout["adapters"] |= {"form": first.form, "scale": first.scale}
    return layout


def _reapply_peft(module: nn.Module, layout: dict[str, Any]) -> None:
    if "adapters" in layout:
        apply_adapters(module, **layout["adapters"])
    if "lora" in layout:
        apply_lora(module, **layout["lora"])


def _clean_name(name: str) -> str:
    """Drop the `_orig_mod.` segments torch.compile puts into state-dict keys."""
    return name.replace("_orig_mod.", "")


def save_model(
    module: nn.Module, cfg: ModelConfig, folder: str | Path, extra_meta: dict[str, Any] | None = None
) -> Path:
    """Write the three files into `folder` (created if needed) and return it. A model with LoRA
    layers or adapters is saved as it is (base + PEFT weights) and rebuilt the same way; call
    `merge_lora` first to ship a plain model."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    inner = getattr(module, "_orig_mod", module)  # a torch.compile wrapper
    tensors: dict[str, torch.Tensor] = {}
    first_name: dict[tuple, str] = {}
    tied: dict[str, str] = {}
    for raw_name, t in inner.state_dict().items():
        name = _clean_name(raw_name)
        key = (t.device, t.untyped_storage().data_ptr(), t.storage_offset(), t.shape, t.stride())
        if key in first_name:  # safetensors refuses shared tensors: keep one, remember the alias
            tied[name] = first_name[key]
            continue
        first_name[key] = name
        tensors[name] = t.detach().contiguous()
    save_file(tensors, str(folder / WEIGHTS), metadata={"format": "pt"})
    (folder / CONFIG).write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    meta = {
        "format_version": FORMAT_VERSION,
        "model_class": type(inner).__name__,
        "model_kwargs": _constructor_kwargs(inner),
        "tied": tied,
        "peft": _peft_layout(inner),
        **(extra_meta or {}),
    }
    (folder / META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return folder


def update_meta(folder: str | Path, extra: dict[str, Any]) -> None:
    """Add ``extra`` to a saved model's meta, in the format ``save_model`` writes, leaving its weights as they are.
    Written to a temporary file and renamed: a reader sees the old meta or the new one."""
    path = Path(folder) / META
    meta = {**json.loads(path.read_text()), **extra}
    tmp = path.with_name(f".{META}.tmp-{os.getpid()}")  # (the name the store clears if a crash leaves it)
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def load_config(folder: str | Path) -> ModelConfig:
    return ModelConfig.from_dict(json.loads((Path(folder) / CONFIG).read_text()))


def load_meta(folder: str | Path) -> dict[str, Any]:
    return json.loads((Path(folder) / META).read_text())


def load_model(folder: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, ModelConfig]:
    """Rebuild the saved module from its config and load the weights (strictly: every key must
    be either loaded or a recorded tied alias that the rebuilt module re-ties itself)."""
    folder = Path(folder)
    cfg = load_config(folder)
    meta = load_meta(folder)
    module = _build(meta["model_class"], cfg, meta.get("model_kwargs", {}))
    _reapply_peft(module, meta.get("peft", {}))
    state = load_file(str(folder / WEIGHTS), device=str(map_location))
    module.to(map_location)
    missing, unexpected = module.load_state_dict(state, strict=False)
    tied = meta.get("tied", {})
    untied = [k for k in missing if k not in tied]
    if untied or unexpected:
        raise ValueError(f"checkpoint {folder} does not match {meta['model_class']}: missing {untied}, unexpected {unexpected}")
    params = dict(module.named_parameters(remove_duplicate=False))
    for alias, source in tied.items():
        if alias in params and params[alias] is not params.get(source):
            raise ValueError(f"checkpoint {folder}: {alias!r} was tied to {source!r} but the rebuilt model does not tie them")
    return module, cfg
