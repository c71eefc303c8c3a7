"""Fixtures: the tiny pretrained model folder (``tiny_pretrained``), the toy task (``toy``) and one CPU thread
per test."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from finetune.tiny_pretrained import make_pretrained
from finetune.toy import toy_data
from pipeline.tokenize.tokenizer import Tokenizer


@pytest.fixture(scope="session")
def pretrained_root(tmp_path_factory) -> Path:
    return make_pretrained(tmp_path_factory.mktemp("pretrained"))


@pytest.fixture(scope="session")
def tokenizer(pretrained_root) -> Tokenizer:
    return Tokenizer.from_dir(pretrained_root / "model")


@pytest.fixture(scope="session")
def data(tokenizer) -> tuple:
    """The toy classification task (finetune.toy): train and validation examples and their encodings."""
    return toy_data(tokenizer)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread; on a shared 2-core machine more threads spin and wait."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
