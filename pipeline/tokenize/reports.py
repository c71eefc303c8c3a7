"""Reports under ``ctx.reports``: the figures (JSON), the tokens-per-document histogram (PNG) and samples.

Everything here is a function of the output files, so a resumed run writes the same reports.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.stage import StageContext
from pipeline.store import atomic_output
from pipeline.tokenize.shards import list_shards, open_shard
from pipeline.tokenize.split import SPLITS
from pipeline.tokenize.tokenizer import Tokenizer

SAMPLE_DOCS = 3
SAMPLE_TOKENS = 64


def plot_lengths(stats: dict[str, Any], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hist = stats["tokens_per_doc"]
    edges = hist["edges"]
    fig, ax = plt.subplots(figsize=(7, 4))
    for split, counts in hist["counts"].items():
        if sum(counts):
            ax.stairs(counts, edges, label=f"{split} ({sum(counts):,} docs)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("tokens per document (EOS included)")
    ax.set_ylabel("documents")
    ax.set_title(f"tokens per document, median {hist['quantiles']['0.5']:.0f}, max {hist['max']:,}")
    ax.legend()
    fig.tight_layout()
    # No version stamp in the PNG: a resumed run, or another matplotlib, writes the same bytes.
    atomic_output(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None}))
    plt.close(fig)


def samples(folder: Path, tok: Tokenizer) -> dict[str, list[dict[str, Any]]]:
    """The first documents of each split as pieces, to eyeball the segmentation."""
    out: dict[str, list[dict[str, Any]]] = {}
    for split in SPLITS:
        rows: list[dict[str, Any]] = []
        for path in list_shards(folder, split) if (folder / split).exists() else []:
            sh = open_shard(path)
            doc_ids = sh.batch.column("doc_id")
            for i in range(min(SAMPLE_DOCS - len(rows), sh.n_docs)):
                ids = sh.tokens[sh.offsets[i]:min(sh.offsets[i + 1], sh.offsets[i] + SAMPLE_TOKENS)]
                rows.append({"doc_id": doc_ids[i].as_py(), "tokens": int(sh.offsets[i + 1] - sh.offsets[i]),
                             "pieces": [tok.id_to_piece(t) for t in ids.tolist()]})
            if len(rows) >= SAMPLE_DOCS:
                break
        out[split] = rows
    return out


def write_reports(ctx: StageContext, stats: dict[str, Any], tok: Tokenizer) -> None:
    ctx.write_report("tokenize_stats.json", stats)
    ctx.write_report("samples.json", samples(ctx.out, tok))
    plot_lengths(stats, ctx.reports / "tokens_per_doc.png")
