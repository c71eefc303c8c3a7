"""A tiny pretrained-model folder, built in the test session: a sentencepiece model trained on a few
lines with the tokenize stage's own options, and a random-init model saved with ``model.save_model``
(the pretrain stage's layout: ``<dir>/model/{model.safetensors, model_config.json, meta.json,
tokenizer/tokenizer.model}``)."""
from __future__ import annotations

import random
from pathlib import Path

import torch

from model import ModelConfig, save_model
from model.flops import build_for_config
from pipeline.pretrain.config import OBJECTIVES
from pipeline.tokenize.config import TokenizeConfig
from pipeline.tokenize.tokenizer import Tokenizer
from pipeline.tokenize.train import train_model, trainer_options

WORDS = ("the a of and to in is was for on that with as by at from it return value list dict string "
         "parse socket event loop message header file path module class function error raise call "
         "object name data window widget test case suite element tree node process queue lock").split()


def tokenizer_bytes(seed: int = 0) -> bytes:
    rng = random.Random(seed)
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 14))) + "." for _ in range(400)]
    lines += ["`code_name` and ``other.name()`` are marked", "ALPHA beta Gamma 123 4567"]
    opts = trainer_options(TokenizeConfig(model_type="bpe", vocab_size=420, sentinels=0), 1.0)
    return train_model(lines, opts, seed)


def make_pretrained(root: Path, arch: str = "decoder", n_embd: int = 32, block_size: int = 64, seed: int = 0,
                    n_layer: int = 2, dropout: float = 0.0) -> Path:
    """Write ``root/model/`` and return ``root`` (what a pretrain manifest's ``.path`` is)."""
    folder = root / "model"
    (folder / "tokenizer").mkdir(parents=True, exist_ok=True)
    data = tokenizer_bytes()
    (folder / "tokenizer" / "tokenizer.model").write_bytes(data)
    tok = Tokenizer(data)
    mcfg = ModelConfig(arch=arch, n_layer=n_layer, n_head=2, n_embd=n_embd, block_size=block_size,
                       vocab_size=tok.vocab_size, norm="rmsnorm", pos="rotary", mlp="relu2", dropout=dropout)
    torch.manual_seed(seed)
    model = build_for_config(mcfg)
    save_model(model, mcfg, folder, extra_meta={"objective": OBJECTIVES[arch]})
    return root
