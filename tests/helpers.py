"""Shared test helpers (tests/ is on sys.path via pyproject's pytest settings)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pipeline.store import Manifest

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("LMFORGE_DATASETS", REPO.parent / "shared" / "datasets"))


def datasets_or_skip(*parts: str) -> Path:
    path = DATASETS.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared/datasets is not available here)")
    return path


def make_upstream(folder: Path, shards: list[list[dict[str, Any]]], drop_reasons: list[list] | None = None,
                  stage: str = "ingest", key: str = "up") -> Manifest:
    """An upstream docs folder with these shards (rows: doc_id, text, source, meta), optionally with a
    ``drop_reason`` column per shard."""
    import pyarrow as pa

    from pipeline import documents

    (folder / "docs").mkdir(parents=True, exist_ok=True)
    for i, rows in enumerate(shards):
        table = documents.docs_table(rows)
        if drop_reasons is not None:
            table = table.append_column("drop_reason", pa.array(drop_reasons[i], type=pa.string()))
        documents.write_table(table, folder / documents.shard_name(i))
    return Manifest(stage=stage, key=key, version="1", config={}, inputs={}, files={}, path=folder)


def output_rows(out: Path) -> list[dict[str, Any]]:
    """Every row of a stage's docs shards, in order."""
    import pyarrow.parquet as pq

    from pipeline import documents

    return [r for p in documents.doc_shards(out) for r in pq.read_table(p).to_pylist()]


def published_files(out: Path) -> dict[str, bytes]:
    """Every file a runner would publish (hidden temporaries excluded), by relative path."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


def token_shards(folder: Path, n_docs: int = 120, seed: int = 0, vocab_size: int = 600) -> Path:
    """A real tokenize-stage output (BPE tokenizer + train/val shards) for a small synthetic corpus."""
    import random

    from pipeline import documents
    from pipeline.configtypes import build
    from pipeline.stage import StageContext
    from pipeline.store import Workspace
    from pipeline.tokenize import TokenizeConfig, run

    words = ("the a of and to in is was for on that with as by at from it he she they we you story river "
             "light cat dog house tree water stone king queen small big old new red blue green happy sad "
             "walk run see said found made went came little day night time year way people").split()
    rng = random.Random(seed)
    texts = [" ".join(" ".join(rng.choice(words) for _ in range(rng.randint(4, 12))).capitalize() + "."
                      for _ in range(rng.randint(3, 8))) for _ in range(n_docs)]
    ws = Workspace(folder / "work", "dedup", "upstream")
    out = ws.open(fresh=True)
    rows = [{"doc_id": f"d:{i}", "text": t, "source": "t", "meta": "{}"} for i, t in enumerate(texts)]
    (out / documents.DOCS_DIR).mkdir(parents=True, exist_ok=True)
    documents.write_table(documents.docs_table(rows), out / documents.shard_name(0))
    manifest = ws.publish("1", {}, {}, {}, None, 0.0)
    cfg = build(TokenizeConfig, {"model_type": "bpe", "vocab_size": vocab_size, "sentinels": 4,
                                 "val_fraction": 0.15, "seed": seed})
    shards = folder / "tokens"
    run(cfg, StageContext(name="tokenize", key="k", out=shards, inputs={"docs": manifest}))
    return shards
