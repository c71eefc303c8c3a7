"""Fixtures for the dedup tests: hermetic corpora, upstream manifests and stage runs."""
from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pipeline.dedup import DedupConfig, run
from pipeline.stage import StageContext
from pipeline.store import Manifest

import helpers as helpers_module
from helpers import output_rows, published_files


def _vocab(rng: random.Random, n: int = 3000) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return sorted({"".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(n)})


class Corpus:
    """Random-word documents (unrelated ones share almost no 5-gram) and controlled edits of them."""

    def __init__(self, seed: int = 0):
        self.rng = random.Random(seed)
        self.vocab = _vocab(self.rng)

    def doc(self, words: int = 200) -> str:
        out = []
        for i in range(words):
            w = self.rng.choice(self.vocab)
            out.append(w.capitalize() if i % 12 == 0 else w + ("." if i % 12 == 11 else ""))
        return " ".join(out)

    def edit(self, text: str, edits: int) -> str:
        """Replace ``edits`` words spread over the text (each kills at most 5 of ~200 5-grams)."""
        words = text.split()
        for k in range(edits):
            words[(k + 1) * len(words) // (edits + 1)] = self.rng.choice(self.vocab)
        return " ".join(words)


def word_5gram_jaccard(a: str, b: str) -> float:
    """Reference Jaccard with Python sets (lowercase, punctuation removed), independent of the stage."""
    def grams(t: str) -> set:
        w = "".join(c for c in t.lower() if c.isalnum() or c.isspace()).split()
        return {tuple(w[i:i + 5]) for i in range(len(w) - 4)}
    ga, gb = grams(a), grams(b)
    return len(ga & gb) / len(ga | gb)


def rows_of(texts: list[str], prefix: str = "d") -> list[dict[str, Any]]:
    return [{"doc_id": f"{prefix}{i}", "text": t, "source": "test", "meta": "{}"} for i, t in enumerate(texts)]


def make_upstream(folder: Path, shards: list[list[dict[str, Any]]], drop_reasons: list[list] | None = None) -> Manifest:
    """An upstream clean-stage folder with the given document shards."""
    return helpers_module.make_upstream(folder, shards, drop_reasons, stage="clean")


def run_stage(cfg: DedupConfig, manifest: Manifest, out: Path, workers: int = 1,
              fail_after_shards: int | None = None) -> dict[str, Any]:
    ctx = StageContext(name="dedup", key="k", out=out, inputs={"docs": manifest}, workers=workers,
                       fail_after_shards=fail_after_shards)
    return run(cfg, ctx)


@pytest.fixture
def corpus() -> Corpus:
    return Corpus()


@pytest.fixture
def helpers() -> SimpleNamespace:
    """The functions above (test modules cannot import a conftest under --import-mode=importlib)."""
    return SimpleNamespace(**{f.__name__: f for f in (make_upstream, run_stage, output_rows, published_files,
                                                      rows_of, word_5gram_jaccard)})
