"""Dedup reports: histograms, the LSH S-curve plot and a side-by-side sample of clusters."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.dedup.lsh import s_curve

_SIZE_EDGES = [1, 2, 3, 5, 9, 17, 33, 65]  # cluster size bins: 1, 2, 3-4, 5-8, …, 65+
MAX_MEMBERS = 5  # members shown per sampled cluster (the kept one first)


def size_histogram(cluster_sizes: np.ndarray) -> dict[str, int]:
    """Number of clusters per size bin (every document is in exactly one cluster, singletons included)."""
    out = {}
    for i, lo in enumerate(_SIZE_EDGES):
        hi = _SIZE_EDGES[i + 1] - 1 if i + 1 < len(_SIZE_EDGES) else None
        count = int(np.count_nonzero((cluster_sizes >= lo) & (cluster_sizes <= (hi or np.inf))))
        out[str(lo) if hi == lo else f"{lo}-{hi}" if hi else f"{lo}+"] = count
    return out


def jaccard_histogram(sims: np.ndarray) -> dict[str, int]:
    """Candidate pairs per tenth of true Jaccard similarity (the last bin includes 1.0)."""
    bins = np.minimum((sims * 10).astype(np.int64), 9)
    counts = np.bincount(bins, minlength=10)
    return {f"{i / 10:.1f}-{(i + 1) / 10:.1f}": int(c) for i, c in enumerate(counts)}


def plot_s_curve(path: Path, bands: int, rows: int, threshold: float) -> None:
    """P(candidate | Jaccard s) for the chosen (b, r), with the threshold marked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = np.linspace(0.0, 1.0, 501)
    p_t = float(s_curve(threshold, bands, rows))
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(s, s_curve(s, bands, rows), color="tab:blue", label=f"b={bands}, r={rows}")
    ax.axvline(threshold, color="tab:red", linestyle="--", label=f"threshold {threshold:g}")
    ax.axhline(p_t, color="tab:red", linestyle=":", linewidth=0.8)
    ax.annotate(f"P={p_t:.3f}", (threshold, p_t), textcoords="offset points", xytext=(6, -14))
    ax.set_xlabel("true Jaccard similarity s")
    ax.set_ylabel("P(candidate pair) = 1 - (1 - s^r)^b")
    ax.set_title("MinHash LSH S-curve")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)


def pick_clusters(labels: np.ndarray, sizes: np.ndarray, k: int) -> list[np.ndarray]:
    """Up to ``k`` multi-document clusters spread evenly over cluster ids; each as its member positions."""
    ids = np.unique(labels[sizes > 1])
    if k == 0 or len(ids) == 0:
        return []
    chosen = ids[np.unique(np.linspace(0, len(ids) - 1, min(k, len(ids))).round().astype(np.int64))]
    return [np.flatnonzero(labels == c) for c in chosen]


def cluster_entry(members: np.ndarray, rows: dict[int, dict[str, Any]], sims: dict[int, float],
                  chars: int) -> dict[str, Any]:
    """One sampled cluster: id, size and its first members (stream order) with truncated texts."""
    shown = members[:MAX_MEMBERS]
    return {
        "cluster_id": int(members[0]),
        "cluster_size": len(members),
        "members": [{
            "position": int(p),
            "doc_id": rows[int(p)]["doc_id"],
            "drop_reason": rows[int(p)]["drop_reason"],
            "jaccard_to_kept": round(sims[int(p)], 4),
            "text": rows[int(p)]["text"][:chars],
        } for p in shown],
    }
