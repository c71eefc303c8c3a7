"""Task models: a head on a pretrained (or freshly initialised) trunk, the fine-tuning methods' surgery
and freezing, the optimizer's head/body groups, and saving / loading the result.

A saved task model is ``model.save_model``'s folder plus ``tokenizer/tokenizer.model``; its meta records
the task (kind, labels, scheme), the input layout (arch, max_len) and what to re-apply before loading
the weights: ``adapters`` (bottleneck, places) when the model has adapters. LoRA is always merged
before saving, so a LoRA run saves a plain model.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any, get_args

import torch
from safetensors.torch import load_file
from torch import nn

from model import (ModelConfig, SequenceClassifier, TokenClassifier, Transformer, apply_adapters, apply_lora,
                   load_config, load_meta, load_model, mark_only_adapters_trainable, mark_only_lora_trainable,
                   merge_lora, save_model)
from model.adapters import is_adapter_param
from model.heads import Pooling, head_layers
from model.layers import init_gpt2_
from model.lora import LoRAEmbedding, LoRALinear, is_lora_param
from pipeline.configtypes import ConfigError

HEAD = "head"
NORMS = (nn.LayerNorm, nn.RMSNorm)


def lm_trunk(lm: nn.Module) -> Transformer:
    """The trunk a task head sits on: a causal or masked LM's transformer, an encoder-decoder's encoder (as
    T5's encoder carries a classifier: Sentence-T5, and T5 encoders in tagging)."""
    return lm.encoder if hasattr(lm, "encoder") else lm.transformer


def resolve_pooling(pooling: str, arch: str) -> str:
    if pooling != "auto":
        return pooling
    # A small causal LM's last position summarises its prefix poorly; the mean of its states carries
    # the text (bench/sst2.py: mean +2.4..+3.6 points over scratch, last -1.5). An encoder-decoder's encoder has
    # no <cls> (T5's input is the text and </s>): the mean of its states, as Sentence-T5 pools.
    return "first" if arch == "encoder" else "mean"


def reinit_blocks(trunk: nn.Module, k: int) -> None:
    """Draw the last ``k`` blocks of ``trunk`` afresh (GPT-2 init, norms to gain 1 / bias 0), as a random
    trunk's are (Zhang et al. 2021, "Revisiting few-sample BERT fine-tuning": the top layers of a pretrained
    model are the most specific to its pretraining objective)."""
    if not 0 <= k <= len(trunk.blocks):
        raise ConfigError(f"finetune.reinit_top: got {k}, allowed: 0 to the trunk's {len(trunk.blocks)} blocks")
    for block in list(trunk.blocks)[len(trunk.blocks) - k:]:
        init_gpt2_(block, len(trunk.blocks))
        for mod in block.modules():
            if isinstance(mod, NORMS):
                mod.reset_parameters()


def build(kind: str, n_labels: int, mcfg: ModelConfig, pretrained: Path | None, pooling: str,
          dropout: float, seed: int, reinit_top: int = 0, head: str = "linear") -> nn.Module:
    """A classifier whose trunk is the pretrained model's (``pretrained`` folder) or a random one
    (``None``: the from-scratch baseline). The head's init depends on ``seed`` only, so the pretrained
    run and its baseline start from the same head. ``dropout``: before the head; the trunk's own dropout
    is ``mcfg.dropout`` in both cases (a pretrained trunk is set to it). ``reinit_top``: a pretrained
    trunk's last blocks drawn afresh (``reinit_blocks``); a random trunk's already are."""
    torch.manual_seed(seed)
    if pretrained is not None:
        lm, _ = load_model(pretrained)
        trunk = lm_trunk(lm)
        trunk.set_dropout(mcfg.dropout)
        reinit_blocks(trunk, reinit_top)
    else:
        trunk = Transformer(mcfg)
    if kind == "tagging":
        model = TokenClassifier(trunk, n_labels, dropout=dropout, head=head)
    else:
        model = SequenceClassifier(trunk, n_labels, pooling=resolve_pooling(pooling, mcfg.arch), dropout=dropout,
                                   head=head)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in head_layers(model.head):
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) * 0.02)
            layer.bias.zero_()
    return model


def add_method_modules(model: nn.Module, method: str, cfg) -> dict[str, Any]:
    """Insert LoRA or adapters (both start as the identity); returns what to record in meta."""
    if method == "lora":
        apply_lora(model.trunk, cfg.lora_targets, r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout)
        return {}
    if method == "adapter":
        layout = {"bottleneck": cfg.adapter_bottleneck, "where": list(cfg.adapter_where), "form": cfg.adapter_form,
                  "scale": cfg.adapter_scale}
        apply_adapters(model.trunk, init=cfg.adapter_init, **layout)
        return {"adapters": layout}
    return {}


def norm_names(model: nn.Module) -> set[str]:
    """Names of the trunk's LayerNorm / RMSNorm parameters (gains, and biases where present)."""
    return {f"{m}.{p}" if m else p for m, mod in model.named_modules() if isinstance(mod, NORMS)
            for p, _ in mod.named_parameters(recurse=False)}


def frozen_names(model: nn.Module, prefixes: list[str] | tuple[str, ...]) -> set[str]:
    """The trunk's own parameters under each of ``prefixes`` (module paths inside the trunk: ``wte``,
    ``wpe``, ``blocks.0``...). A prefix that names no parameter is an error listing the allowed ones.
    What a method adds (LoRA factors, adapters) is not the trunk's own and trains as the method says: with
    ``freeze: ["wte"]`` and LoRA on ``wte`` the table stays as pretrained and its low-rank update learns."""
    trunk = "trunk."
    names = [n for n, _ in model.named_parameters()
             if n.startswith(trunk) and not is_lora_param(n) and not is_adapter_param(n)]
    out: set[str] = set()
    for prefix in prefixes:
        hits = {n for n in names if n[len(trunk):] == prefix or n[len(trunk):].startswith(prefix + ".")}
        if not hits:
            tops = sorted({n[len(trunk):].split(".")[0] for n in names})
            blocks = sorted({".".join(n[len(trunk):].split(".")[:2]) for n in names if n.startswith(trunk + "blocks.")})
            raise ConfigError(f"finetune.freeze: {prefix!r} names no trunk parameter; allowed: module paths "
                              f"such as {', '.join(tops + blocks[:2])}")
        out |= hits
    return out


def check_trunk_options(mcfg: ModelConfig, cfg) -> None:
    """Fail before any run starts when an option does not fit this trunk: ``finetune.reinit_top`` beyond its
    depth, a ``finetune.freeze`` path or ``finetune.lora_targets`` name that matches nothing in it, ``first``
    pooling on a decoder (its first token sees only itself), or ``finetune.aux_lm`` without a decoder whose
    token embeddings are its LM head."""
    if cfg.pooling == "first" and mcfg.arch == "decoder":
        allowed = ", ".join(repr(p) for p in ("auto", *get_args(Pooling)) if p != "first")
        raise ConfigError(f"finetune.pooling: got 'first' for a decoder model, allowed: {allowed} (a causal trunk's "
                          "first token sees only itself; 'first' pools an encoder's <cls>)")
    uses_lora = "lora" in cfg.trains()
    if cfg.reinit_top or cfg.freeze or uses_lora:
        with torch.device("meta"):
            trunk = Transformer(mcfg)
            reinit_blocks(trunk, cfg.reinit_top)
            frozen_names(SequenceClassifier(trunk, 1), cfg.freeze)
            if uses_lora:
                try:
                    apply_lora(trunk, cfg.lora_targets)
                except ValueError as e:
                    raise ConfigError(f"finetune.lora_targets: {str(e).removeprefix('apply_lora: ')}") from None
                _check_lora_rank(trunk, cfg.lora_r)
    if cfg.aux_lm and (mcfg.arch != "decoder" or not mcfg.tie_embeddings):
        raise ConfigError(f"finetune.aux_lm: got {cfg.aux_lm} for a model with arch={mcfg.arch}, tie_embeddings="
                          f"{mcfg.tie_embeddings}, allowed: 0 (the auxiliary LM loss is next-token prediction "
                          "through the token embeddings: a decoder trunk with tied embeddings only)")


def _check_lora_rank(trunk: nn.Module, r: int) -> None:
    """A rank beyond the smaller side of a target's weight adds parameters, not expressiveness."""
    sides = {name: min(m.in_features, m.out_features) if isinstance(m, LoRALinear) else
             min(m.num_embeddings, m.embedding_dim)
             for name, m in trunk.named_modules() if isinstance(m, (LoRALinear, LoRAEmbedding))}
    name = min(sides, key=sides.get)
    if r > sides[name]:
        raise ConfigError(f"finetune.lora_r: got {r}, allowed: 1 to {sides[name]} (the smaller side of {name}'s "
                          "weight; a larger rank adds parameters, not expressiveness)")


def set_trainable(model: nn.Module, what: str, norms: bool = False,
                  freeze: set[str] | frozenset[str] = frozenset()) -> None:
    """``head`` (head only), ``full``, ``lora`` or ``adapter`` (those and the head). ``norms``: with
    ``lora`` / ``adapter``, the norm gains (and biases) train too. ``freeze``: parameter names
    (``frozen_names``) that stay frozen whatever trains."""
    if what == "full":
        for p in model.parameters():
            p.requires_grad_(True)
    elif what == "lora":
        mark_only_lora_trainable(model, keep=(HEAD,))
    elif what == "adapter":
        mark_only_adapters_trainable(model, keep=(HEAD,))
    elif what == "head":
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith(HEAD + "."))
    else:
        raise ValueError(f"set_trainable: unknown {what!r}")
    if norms and what in ("lora", "adapter"):
        names = norm_names(model)
        for name, p in model.named_parameters():
            if name in names:
                p.requires_grad_(True)
    for name, p in model.named_parameters():
        if name in freeze:
            p.requires_grad_(False)


def lora_zero_factors(model: nn.Module) -> set[str]:
    """The names of the LoRA factors that start at zero (each module's ``ZERO_FACTOR``: ``lora_B`` of a linear
    layer, ``lora_A`` of the token embeddings)."""
    return {f"{m}.{mod.ZERO_FACTOR}" for m, mod in model.named_modules()
            if isinstance(mod, (LoRALinear, LoRAEmbedding))}


def _group(name: str, peft_extra: frozenset[str] | set[str] = frozenset(),
           lora_fast: frozenset[str] | set[str] = frozenset()) -> str:
    if name.startswith(HEAD + "."):
        return "head"
    if name in lora_fast:
        return "lora_zero"
    if is_adapter_param(name) or is_lora_param(name) or name in peft_extra:
        return "peft"
    return "body"


BLOCK = re.compile(r"(?:^|\.)blocks\.(\d+)\.")


def layer_scales(model: nn.Module, decay: float) -> dict[str, float]:
    """Layer-wise learning-rate decay (ELECTRA, BEiT; "LLRD"): the factor on ``lr`` of each trunk weight.
    With L blocks, block i (0-based) gets ``decay ** (L - i)``, the final norm 1, and everything else in
    the trunk (token and position embeddings, an embedding adapter) ``decay ** (L + 1)``: the further
    from the head, the smaller the steps, so the lower layers keep more of what pretraining put there."""
    names = [n for n, _ in model.named_parameters() if not n.startswith(HEAD + ".")]
    depth = {n: int(m.group(1)) + 1 for n in names if (m := BLOCK.search(n))}
    top = max(depth.values(), default=0) + 1
    for n in names:
        if n not in depth:
            depth[n] = top if ".ln_f." in f".{n}" else 0
    return {n: decay ** (top - d) for n, d in depth.items()}


def optimizer(model: nn.Module, lr: float, head_lr: float, weight_decay: float,
              peft_lr: float | None = None, peft_extra: frozenset[str] | set[str] = frozenset(),
              layer_decay: float = 1.0, lora_plus: float = 1.0) -> torch.optim.AdamW:
    """AdamW over trainable parameters in groups with their own lr: the head (``head_lr``), adapter /
    LoRA weights and the names in ``peft_extra`` (norm gains trained with them: ``peft_lr``, default
    ``lr``) and the trunk (``lr``, times ``layer_scales`` when ``layer_decay`` < 1). ``lora_plus`` != 1:
    LoRA's zero-initialised factors (``lora_zero_factors``) form the group ``lora_zero`` at ``peft_lr`` x
    ``lora_plus`` (LoRA+, Hayou et al. 2024). Matrices decay; biases and norm gains do not."""
    peft = lr if peft_lr is None else peft_lr
    rates = {"head": head_lr, "peft": peft, "body": lr, "lora_zero": peft * lora_plus}
    scales = layer_scales(model, layer_decay) if layer_decay < 1.0 else {}
    fast = lora_zero_factors(model) if lora_plus != 1.0 else set()
    groups: dict[tuple[str, bool, float], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            g = _group(name, peft_extra, fast)
            scale = scales.get(name, 1.0) if g == "body" else 1.0
            groups.setdefault((g, p.dim() >= 2, scale), []).append(p)
    return torch.optim.AdamW([{"params": ps, "lr": rates[g] * s, "base_lr": rates[g] * s, "group": g,
                               "weight_decay": weight_decay if decay else 0.0}
                              for (g, decay, s), ps in sorted(groups.items())], betas=(0.9, 0.999), eps=1e-8)


def has_lora(model: nn.Module) -> bool:
    return any(isinstance(m, (LoRALinear, LoRAEmbedding)) for m in model.modules())


def save(model: nn.Module, mcfg: ModelConfig, folder: Path, tokenizer_file: Path, meta: dict[str, Any]) -> Path:
    """Merge LoRA, write the weights, config and meta, and copy the tokenizer next to them."""
    if has_lora(model):
        merge_lora(model)
    save_model(model, mcfg, folder, extra_meta=meta)
    (folder / "tokenizer").mkdir(exist_ok=True)
    shutil.copyfile(tokenizer_file, folder / "tokenizer" / "tokenizer.model")
    return folder


def load_with_tokenizer(folder: Path) -> tuple[nn.Module, dict[str, Any], Any, int]:
    """A saved task model (``load``), its meta, the tokenizer saved beside it and the id inputs are padded with:
    what scoring a test split and ``lmforge predict`` both need."""
    from pipeline.tokenize.tokenizer import Tokenizer
    model, _, meta = load(folder)
    tok = Tokenizer.from_dir(folder)
    return model, meta, tok, tok.pad_id if tok.pad_id is not None else 0


def load(folder: Path, map_location: str = "cpu") -> tuple[nn.Module, ModelConfig, dict[str, Any]]:
    """Rebuild a saved task model (re-applying adapters recorded in its meta) and load its weights."""
    folder = Path(folder)
    meta, mcfg = load_meta(folder), load_config(folder)
    if "adapters" not in meta:
        module, mcfg = load_model(folder, map_location)
        return module, mcfg, meta
    kwargs = meta.get("model_kwargs", {})
    cls = SequenceClassifier if meta["model_class"] == "SequenceClassifier" else TokenClassifier
    module = cls(Transformer(mcfg), **kwargs)
    apply_adapters(module.trunk, **meta["adapters"])  # bottleneck, where (and form, scale since they exist)
    module.load_state_dict(load_file(str(folder / "model.safetensors"), device=str(map_location)), strict=True)
    return module.to(map_location), mcfg, meta


__all__ = ["build", "add_method_modules", "set_trainable", "optimizer", "save", "load", "load_with_tokenizer",
           "resolve_pooling", "has_lora", "norm_names", "frozen_names", "check_trunk_options", "lora_zero_factors"]
