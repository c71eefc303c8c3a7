"""Fixtures for the clean tests: upstream manifests, stage runs, output readers, sample texts."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pipeline.clean import CleanConfig, run
from pipeline.stage import StageContext
from pipeline.store import Manifest

from helpers import make_upstream, output_rows, published_files

# Written for these tests: plain English prose, five lines, ~100 words, no repetition.
PROSE = """The river wound slowly through the valley, carrying melted snow from distant mountains toward the sea.
Farmers along its banks had learned to read the color of the water and to plant their crops accordingly.
In spring the current grew strong and muddy, while in late summer it slowed to a clear and gentle stream.
Children gathered smooth stones near the shallow bend, and old fishermen told stories about floods that had reshaped entire villages.
Nobody could remember exactly when the wooden bridge was built, but everyone agreed that it had survived more storms than anyone expected."""

# A pydoc-style module page, the shape of the default corpus's stdlib_docs documents.
PYDOC = """shelfkit

Helpers for storing small records on disk.

open_store(path, *, create=False)
    Open the store at path and return a Store object.

    If create is true, a missing store is created; otherwise a missing
    store raises FileNotFoundError.

class Store
    A mapping from string keys to records, backed by one file.

    Store.get(self, key, default=None)
        Return the record for key, or default when the key is absent.

    Store.put(self, key, record)
        Write record under key, replacing any previous value."""

DOCSTRING = "abs(x, /)\n    Return the absolute value of the argument."

# Modern Chinese prose written for these tests (~110 characters).
CHINESE = ("清晨的河边很安静，只有几只白鹭在浅水里慢慢走动。老人们沿着石板路散步，偶尔停下来看看远处的山。"
           "太阳升起以后，渔船陆续出发，孩子们背着书包跑过小桥，笑声在空气里回荡。到了中午，市场开始热闹起来，"
           "商贩们大声招呼客人，新鲜的蔬菜和水果摆满了摊位。")

CODE = '''"""A tiny module."""
import os


def main(argv):
    for name in argv:
        if os.path.exists(name):
            print(name)
    return 0
'''


def rows_of(texts: list[str], source: str = "docs", prefix: str = "d") -> list[dict[str, Any]]:
    return [{"doc_id": f"{prefix}{i}", "text": t, "source": source, "meta": "{}"} for i, t in enumerate(texts)]


def run_stage(cfg: CleanConfig, manifest: Manifest, out: Path, work: Path, workers: int = 1,
              fail_after_shards: int | None = None) -> dict[str, Any]:
    ctx = StageContext(name="clean", key="k", out=out, inputs={"docs": manifest}, workers=workers,
                       work=work, fail_after_shards=fail_after_shards)
    return run(cfg, ctx)


@pytest.fixture
def helpers() -> SimpleNamespace:
    """The helpers above (test modules cannot import a conftest under --import-mode=importlib)."""
    return SimpleNamespace(make_upstream=make_upstream, rows_of=rows_of, run_stage=run_stage,
                           output_rows=output_rows, published_files=published_files)


@pytest.fixture
def texts() -> SimpleNamespace:
    return SimpleNamespace(prose=PROSE, pydoc=PYDOC, docstring=DOCSTRING, chinese=CHINESE, code=CODE)
