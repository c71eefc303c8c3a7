"""Tiny but real upstream artifacts for the evaluate tests, built once per session: token shards written by
the tokenize stage, saved pretrained model folders laid out as the pretrain stage writes them, a task's files."""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
import torch

from model import ModelConfig, save_model
from model.flops import build_for_config
from pipeline import documents
from pipeline.pretrain.config import OBJECTIVES
from pipeline.store import Manifest
from pipeline.tokenize import TokenizeConfig
from pipeline.tokenize import run as tokenize_run
from pipeline.stage import StageContext

WORDS = ("the cat dog bird sat ran on a mat log tree big small red blue happy sad and then it was "
         "very good bad day night sun moon").split()


def sentences(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 12))).capitalize() + "." for _ in range(n)]


def manifest(stage: str, key: str, folder: Path, stats: dict | None = None, inputs: dict | None = None) -> Manifest:
    return Manifest(stage=stage, key=key, version="1", config={}, inputs=inputs or {}, files={}, stats=stats or {},
                    path=folder)


def tokenized(root: Path) -> Manifest:
    """A real tokenize output over 60 short synthetic documents (vocabulary 300)."""
    docs = root / "docs"
    texts = [" ".join(sentences(4, i)) for i in range(60)]
    rows = [{"doc_id": f"d{i}", "text": t, "source": "s", "meta": "{}"} for i, t in enumerate(texts)]
    path = docs / documents.shard_name(0)
    path.parent.mkdir(parents=True)
    documents.write_table(documents.docs_table(rows), path)
    ctx = StageContext(name="tokenize", key="tok", out=root / "tokens",
                       inputs={"docs": manifest("decontaminate", "dc", docs)})
    stats = tokenize_run(TokenizeConfig(vocab_size=300, sentinels=4, val_fraction=0.25, train_threads=1), ctx)
    return manifest("tokenize", "tok", ctx.out, stats)


def pretrained(root: Path, tokens: Manifest, arch: str = "decoder", seed: int = 0) -> Manifest:
    """A pretrain-stage folder: model/ (weights, config, meta, tokenizer/, tokens_meta.json)."""
    meta = json.loads((tokens.path / "meta.json").read_text())
    torch.manual_seed(seed)
    mcfg = ModelConfig(arch=arch, vocab_size=meta["vocab_size"], n_layer=1, n_head=2, n_embd=16, block_size=32)
    model = build_for_config(mcfg)
    folder = root / f"pretrain-{arch}"
    save_model(model, mcfg, folder / "model", extra_meta={"objective": OBJECTIVES[arch]})
    shutil.copytree(tokens.path / "tokenizer", folder / "model" / "tokenizer")
    shutil.copy(tokens.path / "meta.json", folder / "model" / "tokens_meta.json")
    return manifest("pretrain", f"pre-{arch}", folder)


def task_files(root: Path, n: int = 24) -> dict[str, str]:
    """A two-class task: sentences about animals (label a) or colours (label b); train ends with two bad rows."""
    rng = random.Random(7)
    out = {}
    for split, count in (("train", n), ("validation", n // 2), ("test", n // 2)):
        rows = []
        for i in range(count):
            label = "a" if i % 2 else "b"
            words = ["cat", "dog", "bird"] if label == "a" else ["red", "blue", "big"]
            rows.append({"text": f"the {rng.choice(words)} was {rng.choice(WORDS)} and {rng.choice(words)}",
                         "label": label})
        if split == "train":  # two bad rows, dropped and counted: lines 25 (no label) and 26 (no text)
            rows += [{"text": "the cat was red"}, {"text": "", "label": "a"}]
        path = root / "task" / f"{split}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        out[split] = f"task/{split}.jsonl"
    return out


@pytest.fixture(scope="session")
def tokens(tmp_path_factory) -> Manifest:
    return tokenized(tmp_path_factory.mktemp("tokens"))


@pytest.fixture(scope="session")
def decoder(tokens, tmp_path_factory) -> Manifest:
    return pretrained(tmp_path_factory.mktemp("decoder"), tokens, "decoder")


@pytest.fixture(scope="session")
def encoder(tokens, tmp_path_factory) -> Manifest:
    return pretrained(tmp_path_factory.mktemp("encoder"), tokens, "encoder")


@pytest.fixture(scope="session")
def encoder_decoder(tokens, tmp_path_factory) -> Manifest:
    return pretrained(tmp_path_factory.mktemp("encoder_decoder"), tokens, "encoder_decoder")


@pytest.fixture(scope="session")
def make_manifest():
    return manifest


@pytest.fixture(scope="session")
def tasks_cfg(tmp_path_factory):
    """(a TasksConfig with one two-class files task, the project folder its paths are relative to)."""
    from pipeline.tasks import TaskConfig, TasksConfig
    root = tmp_path_factory.mktemp("root")
    files = task_files(root)
    cfg = TasksConfig([TaskConfig(name="animals", kind="classification", source="files", train=files["train"],
                                  validation=files["validation"], test=files["test"])])
    return cfg, root
