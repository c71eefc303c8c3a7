"""Fixtures for the tokenize stage and the loader: a small multilingual corpus, its manifest, a trained model.

No ``__init__.py`` in this folder on purpose: ``tokenize`` is also a standard-library module.
"""
from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import pytest

from pipeline import documents
from pipeline.configtypes import build
from pipeline.stage import StageContext
from pipeline.store import Manifest, Workspace
from pipeline.tokenize import TokenizeConfig, Tokenizer, run

WORDS = ("the a of and to in is was for on that with as by at from it he she they we you story river light "
         "cat dog house tree water stone king queen small big old new red blue green happy sad walk run "
         "see said found made went came little day night time year way people world school ball garden").split()
CJK = "天地玄黃宇宙洪荒日月盈昃辰宿列張寒來暑往秋收冬藏閏餘成歲律呂調陽雲騰致雨露結為霜金生麗水玉出崑岡"
RU = "мир дом кот собака река свет книга город время жизнь человек дорога окно".split()
CODE = 'def f(x):\n    if x > 10:\n        return x * 2\n    return [i for i in range(x)]\n'

# Small enough to train in well under a second (BPE), big enough for every script to get pieces.
TINY = {"model_type": "bpe", "vocab_size": 600, "sentinels": 8, "shard_tokens": 700, "val_fraction": 0.2,
        "seed": 3}


def make_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for i in range(n):
        kind = i % 5
        if kind in (0, 1):
            sents = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))).capitalize() + "."
                     for _ in range(rng.randint(1, 6))]
            text = " ".join(sents) + f" In {rng.randint(1000, 2024)} there were {rng.randint(2, 999)} of them."
        elif kind == 2:
            text = "".join(rng.choice(CJK) for _ in range(rng.randint(10, 80))) + "。"
        elif kind == 3:
            text = " ".join(rng.choice(RU) for _ in range(rng.randint(5, 30))) + "."
        else:
            text = CODE.replace("10", str(rng.randint(0, 99))) + "# done 😀\n"
        texts.append(text)
    return texts


def make_manifest(folder: Path, texts: list[str], docs_per_shard: int = 40,
                  cluster_ids: list[int] | None = None, doc_ids: list[str] | None = None,
                  stage: str = "dedup") -> Manifest:
    """Publish ``texts`` as an upstream document stage output (with ``cluster_id`` if given)."""
    import pyarrow as pa

    ws = Workspace(folder, stage, "upstream")
    out = ws.open(fresh=True)
    (out / documents.DOCS_DIR).mkdir(exist_ok=True)
    ids = doc_ids or [f"t:{i}" for i in range(len(texts))]
    for s, a in enumerate(range(0, max(len(texts), 1), docs_per_shard)):
        rows = [{"doc_id": ids[i], "text": texts[i], "source": "t", "meta": "{}"}
                for i in range(a, min(a + docs_per_shard, len(texts)))]
        table = documents.docs_table(rows)
        if cluster_ids is not None:
            table = table.append_column("cluster_id", pa.array(cluster_ids[a:a + len(rows)], type=pa.int64()))
        documents.write_table(table, out / documents.shard_name(s))
    return ws.publish("1", {}, {}, {}, None, 0.0)


def run_stage(out: Path, manifest: Manifest, workers: int = 1, fail_after: int | None = None,
              **overrides: Any) -> dict[str, Any]:
    cfg = build(TokenizeConfig, {**TINY, **overrides})
    ctx = StageContext(name="tokenize", key="k", out=out, inputs={"docs": manifest}, workers=workers,
                       fail_after_shards=fail_after)
    return run(cfg, ctx)


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def corpus() -> list[str]:
    return make_texts(200)


@pytest.fixture(scope="session")
def built(tmp_path_factory, corpus) -> tuple[Path, dict[str, Any], list[str]]:
    """One stage run on the corpus: (output folder, returned figures, texts)."""
    root = tmp_path_factory.mktemp("built")
    manifest = make_manifest(root / "work", corpus)
    stats = run_stage(root / "out", manifest)
    return root / "out", stats, corpus


@pytest.fixture(scope="session")
def tok(built) -> Tokenizer:
    return Tokenizer.from_dir(built[0])


@pytest.fixture
def manifest_of(tmp_path) -> Callable[..., Manifest]:
    return lambda texts, **kw: make_manifest(tmp_path / "work", texts, **kw)


@pytest.fixture(scope="session")
def h() -> SimpleNamespace:
    """The helpers above, for test modules (conftest modules are not importable by name here)."""
    return SimpleNamespace(make_texts=make_texts, make_manifest=make_manifest, run_stage=run_stage,
                           files_of=files_of, TINY=TINY, CJK=CJK, CODE=CODE)
