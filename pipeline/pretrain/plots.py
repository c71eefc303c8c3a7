"""The loss-curve plot logged with every pretraining run."""
from __future__ import annotations

import json
from pathlib import Path


def loss_curve(metrics: Path, out: Path) -> Path | None:
    if not metrics.exists():
        return None
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    if not rows:
        return None
    try:  # a bare GPU box may lack matplotlib: the figures are in metrics.jsonl anyway
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax.plot([r["step"] for r in rows], [r["train_loss"] for r in rows], lw=0.8, label="train loss")
    val = [r for r in rows if "val_loss" in r]
    if val:
        ax.plot([r["step"] for r in val], [r["val_loss"] for r in val], "o-", label="val loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.legend()
    ax.grid(alpha=0.3)
    ax2.plot([r["step"] for r in rows], [r["lr"] for r in rows], color="tab:green")
    ax2.set_xlabel("step")
    ax2.set_ylabel("learning rate")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
