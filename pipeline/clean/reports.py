"""The stage's figures and reports, computed from the output shards (so a resumed run reports the same).

- stats: ``docs_in``, ``docs_kept``, ``docs_dropped``, ``chars_in``, ``chars_kept`` (normalized text),
  ``pii_emails``, ``pii_ips``, ``dropped`` = {reason: count} for every rule that applies to a source
  present (zeros included), ``by_source`` = {source: {docs_in, docs_kept}};
- ``reports/rules.json``: per rule its column, test, thresholds, the scripts, sources and document
  lengths it applies to, its count;
- ``reports/dropped_samples.json``: up to ``samples_per_reason`` dropped documents per reason, in
  document order, text cut to ``sample_chars``, with the value that failed;
- ``reports/attributes.png``: distributions of the thresholded attributes, with the thresholds.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.clean.config import CleanConfig
from pipeline.clean.rules import RULES, Rule, rules_for_source
from pipeline.documents import doc_shards
from pipeline.stage import StageContext

_SUMMARY = ["source", "n_chars", "pii_emails", "pii_ips", "drop_reason"]


def write_all(cfg: CleanConfig, ctx: StageContext) -> dict:
    shards = doc_shards(ctx.out)
    summary = pa.concat_tables([pq.read_table(p, columns=_SUMMARY) for p in shards]) if shards else None
    stats = _stats(cfg, summary)
    rules = [r for r in RULES if r.name in stats["dropped"]]
    ctx.write_report("rules.json", [_describe(r, cfg, stats) for r in rules])
    ctx.write_report("dropped_samples.json", _samples(cfg, shards, rules))
    if cfg.plot and shards:
        _plot(cfg, shards, rules, ctx.reports / "attributes.png")
    return stats


def _stats(cfg: CleanConfig, t: pa.Table | None) -> dict:
    if t is None or t.num_rows == 0:
        return {"docs_in": 0, "docs_kept": 0, "docs_dropped": 0, "chars_in": 0, "chars_kept": 0,
                "pii_emails": 0, "pii_ips": 0, "dropped": {}, "by_source": {}}
    kept = t.column("drop_reason").is_null()
    sources = sorted(set(t.column("source").to_pylist()))
    applied = {n for s in sources for n in rules_for_source(s, cfg)}
    counts = Counter(r for r in t.column("drop_reason").to_pylist() if r is not None)
    by_source = {}
    for s in sources:
        mask = pc.equal(t.column("source"), s)
        by_source[s] = {"docs_in": int(pc.sum(mask).as_py()), "docs_kept": int(pc.sum(pc.and_(mask, kept)).as_py())}
    docs_kept = int(pc.sum(kept).as_py() or 0)
    return {
        "docs_in": t.num_rows, "docs_kept": docs_kept, "docs_dropped": t.num_rows - docs_kept,
        "chars_in": int(pc.sum(t.column("n_chars")).as_py()),
        "chars_kept": int(pc.sum(t.column("n_chars").filter(kept)).as_py() or 0),
        "pii_emails": int(pc.sum(t.column("pii_emails")).as_py()),
        "pii_ips": int(pc.sum(t.column("pii_ips")).as_py()),
        "dropped": {r.name: counts.get(r.name, 0) for r in RULES if r.name in applied},
        "by_source": by_source,
    }


def _describe(rule: Rule, cfg: CleanConfig, stats: dict) -> dict:
    limits = dict(zip(rule.thresholds, rule.limits(cfg))) if rule.thresholds else {"fixed": rule.fixed}
    return {"rule": rule.name, "column": rule.column, "drop_if": rule.op, "thresholds": limits,
            "scripts": list(rule.scripts) if rule.scripts else "all",
            "min_doc_words": cfg.stats_min_words if rule.stats else 0,
            "sources": [s for s in stats["by_source"] if rule.name in rules_for_source(s, cfg)],
            "dropped": stats["dropped"][rule.name], "note": rule.why}


def _samples(cfg: CleanConfig, shards: list, rules: list[Rule]) -> dict:
    columns = {r.name: r.column for r in rules}
    out: dict[str, list] = {r.name: [] for r in rules}
    if cfg.samples_per_reason == 0:
        return out
    for path in shards:
        t = pq.read_table(path, columns=["drop_reason"])
        wanted = [n for n, v in out.items() if len(v) < cfg.samples_per_reason]
        if not wanted:
            break
        mask = pc.is_in(t.column("drop_reason"), pa.array(wanted))
        if not pc.any(mask).as_py():
            continue
        rows = pq.read_table(path, columns=["doc_id", "source", "text", "drop_reason", *sorted(set(columns.values()))])
        for row in rows.filter(mask).to_pylist():
            bucket = out[row["drop_reason"]]
            if len(bucket) < cfg.samples_per_reason:
                bucket.append({"doc_id": row["doc_id"], "source": row["source"],
                               "value": row[columns[row["drop_reason"]]],
                               "text": row["text"][:cfg.sample_chars]})
    return out


_PANELS = (  # (title, columns sharing an x axis)
    ("words (log10 of 1 + n)", ("n_words",)),
    ("mean word length", ("mean_word_len",)),
    ("stop words", ("stopword_count",)),
    ("word ratios", ("symbol_ratio", "alpha_words_ratio")),
    ("line ratios", ("bullet_lines_ratio", "ellipsis_lines_ratio", "terminal_punct_lines_ratio",
                     "short_lines_ratio", "javascript_policy_lines_ratio")),
    ("duplicate lines / paragraphs", ("dup_line_frac", "dup_line_char_frac", "dup_para_frac", "dup_para_char_frac")),
    ("top n-gram chars", ("top_2gram_char_frac", "top_3gram_char_frac", "top_4gram_char_frac")),
    ("duplicated n-gram chars", tuple(f"dup_{n}gram_char_frac" for n in range(5, 11))),
    ("longest line (code)", ("max_line_len",)),
)


def _plot(cfg: CleanConfig, shards: list, rules: list[Rule], path) -> None:
    """Small multiples: per family of thresholded attributes, the distribution over all documents
    (log10 counts) with each threshold as a dashed line of the same colour."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    limits: dict[str, list[float]] = {}
    for r in rules:
        if r.op != "true" and r.name != "empty":
            limits.setdefault(r.column, []).extend(r.limits(cfg))
    panels = [(title, [c for c in cols if c in limits]) for title, cols in _PANELS]
    panels = [(title, cols) for title, cols in panels if cols]
    if not panels:
        return
    t = pa.concat_tables([pq.read_table(p, columns=[c for _, cols in panels for c in cols]) for p in shards])
    # Few axes, no y ticks: matplotlib spends its time laying out axes and tick labels.
    fig, axes = plt.subplots(2, -(-len(panels) // 2), figsize=(3.2 * -(-len(panels) // 2), 5.2), squeeze=False)
    for ax, (title, cols) in zip(axes.flat, panels):
        for k, col in enumerate(cols):
            values = t.column(col).to_numpy(zero_copy_only=False).astype(float)
            lims = limits[col]
            if col == "n_words":
                values, lims = np.log10(1 + values), [float(np.log10(1 + v)) for v in lims]
            edges = np.histogram_bin_edges(np.concatenate([values, lims]), bins=40)
            color = f"C{k}"
            ax.stairs(np.log10(1 + np.histogram(values, edges)[0]), edges, color=color, label=col)
            for lim in lims:
                ax.axvline(lim, color=color, lw=0.8, ls="--")
        ax.set_title(title, fontsize=8)
        ax.set_yticks([])
        ax.tick_params(labelsize=6)
        ax.locator_params(axis="x", nbins=4)
        if len(cols) > 1:
            ax.legend(fontsize=5, frameon=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    fig.subplots_adjust(left=0.02, right=0.99, bottom=0.07, top=0.93, wspace=0.12, hspace=0.35)
    fig.savefig(path, dpi=72)
    plt.close(fig)
