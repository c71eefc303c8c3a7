"""The evaluation report: one Markdown page of tables (``report.md``) and the same figures as JSON."""
from __future__ import annotations

from typing import Any

from pipeline.evaluate.scores import METRICS

RUN_METRICS = ("accuracy", "macro_f1", "precision", "recall", "f1")


def fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if v != v:
            return "nan"
        out = f"{v:.{digits}f}"
        return out[1:] if out.startswith("-") and float(out) == 0 else out  # -0.00001 is no loss: not "-0.0000"
    return str(v).replace("|", "\\|")


def pm(mean: float | None, std: float | None) -> str:
    return fmt(mean) if std is None else f"{fmt(mean)} ± {fmt(std)}"


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]  # fmt escapes a "|" in a string
    return out


def provenance_lines(prov: dict[str, Any], decont: dict[str, Any] | None) -> list[str]:
    rows = [[p["what"], p["stage"], f"`{p['key']}`", p.get("note", "")] for p in prov["artifacts"]]
    lines = ["## Provenance", "", *table(["artifact", "stage", "key", "note"], rows), ""]
    if decont is not None:
        by_task = ", ".join(f"{k}: {fmt(v)}" for k, v in decont.get("removed_by_task", {}).items()) or "none"
        short = ""
        if decont.get("eval_texts") and decont.get("eval_texts_unprotected") is not None:
            bound = f"under {decont['min_words']} words, or {decont['min_chars']} characters in scripts written " \
                "without spaces" if "min_words" in decont else "too short to match"
            short = (f" {fmt(decont['eval_texts_unprotected'])} of the {fmt(decont['eval_texts'])} evaluation texts "
                     f"({bound}) protect nothing: a corpus document holding one of them is kept.")
        lines += [f"Decontamination removed **{fmt(decont.get('docs_removed'))}** of {fmt(decont.get('docs_in'))} "
                  f"documents sharing an n-gram with a task's evaluation text (by task: {by_task}; a document can "
                  f"match several tasks).{short}", ""]
    return lines


def _no_negative_zero(x: float | None) -> float | None:
    """``x`` as the report shows it (4 decimals), so that a tiny negative reads 0.0000, not -0.0000."""
    return None if x is None else round(x, 4) + 0.0


def lm_lines(lm: dict[str, Any]) -> list[str]:
    span = lm["objective"] == "span"
    masked = lm["objective"] in ("masked", "span")
    title = "## Language model"
    if span:
        title += " (encoder-decoder, span corruption: loss and accuracy on the decoder's targets; no perplexity)"
    elif masked:
        title += " (masked LM: loss and accuracy on masked positions; no perplexity)"
    header = ["data", "scorer", "tokens", "bytes", "loss (nats/token)"]
    header += ["target accuracy" if span else "masked accuracy"] if masked else ["perplexity", "bits per byte"]
    header += ["encoder gain (nats/target)"] if span else []
    rows = []
    for r in lm["rows"]:
        row = [r["data"], r["scorer"], r.get("tokens"), r.get("bytes"), r.get("loss")]
        row += [r.get("accuracy")] if masked else [r.get("ppl"), r.get("bpb")]
        row += [r.get("encoder_gain")] if span else []  # (fmt shows no -0.0000)
        rows.append(row)
    lines = [title, "", *table(header, rows), ""]
    for r in lm["rows"]:
        if "path" in r:
            lines += [f"- `{r['data']}`: {r['path']} (blake2b-128 `{r['digest']}`, {fmt(r['chars'])} characters)"]
    if any("path" in r for r in lm["rows"]):
        lines += [""]
    if not masked and lm.get("bpb_gain_over_unigram") is not None:
        lines += [f"Unigram baseline minus pretrained model: **{fmt(lm['bpb_gain_over_unigram'])}** bits per byte "
                  "on the validation split (positive: what pretraining bought; the baseline uses the same tokens "
                  "with train-split frequencies and add-one smoothing).", ""]
    if span:
        rate, span_len = lm.get("mask_rate", 0.15), f"{lm.get('mean_span', 3.0):g}"
        lines += [f"The encoder reads each window with {100 * rate:.0f}% of its tokens cut out in spans of {span_len} "
                  "tokens on average (evaluate.mask_rate and evaluate.mean_span: the same for every model, whatever "
                  "it was pretrained with), each span one sentinel; the decoder is scored on writing the spans "
                  "back (each behind its sentinel, then EOS; its tokens column counts those targets). A unigram row "
                  "scores every token of the split.", ""]
        gain = lm["rows"][0].get("encoder_gain")
        if gain is not None:
            gain = _no_negative_zero(gain)
            lines += [f"Does the decoder read its encoder? Given its partner window's source instead of its own, its "
                      f"loss {'rises' if gain >= 0 else 'falls'} by **{fmt(abs(gain))}** nats per target on the "
                      "validation split (the encoder gain column)"
                      + (f": next to nothing, so its encoder has learned little that a task head could use (an "
                         f"encoder-decoder learns from its spans alone, ~{100 * rate:.0f}% of the tokens: train it "
                         "longer)." if gain < 0.05 else "."), ""]
    elif masked:
        lines += ["The masked LM is scored on the masked positions only (its tokens column counts those); a unigram "
                  "row scores every token of the split.", ""]
    else:
        lines += ["Bits per byte = Σ NLL (nats) / ln 2 / UTF-8 bytes of the predicted tokens (lm-eval's definition).",
                  ""]
    return lines


def task_data_lines(tasks: list[dict[str, Any]]) -> list[str]:
    if not tasks:
        return []
    def cut(t: dict[str, Any]) -> str:
        n = t.get("truncated") or {}
        return " / ".join("—" if n.get(s) is None else f"{n[s]:,}" for s in ("train", "validation", "test"))
    rows = [[t["task"], t["n_train"], t["n_validation"], t["n_test"], cut(t), t["dropped"],
             ", ".join(f"{r} {n:,}" for r, n in sorted(t["dropped_by_reason"].items())) or "—"] for t in tasks]
    lines = ["## Task data", "", *table(["task", "train rows", "validation rows", "test rows",
                                         "inputs cut at max_len (train / val / test)", "rows dropped",
                                         "dropped by reason"], rows), ""]
    lossy = [t for t in tasks if t["dropped"]]
    if lossy:
        lines += ["Dropped rows, with their file and line (up to 20 per reason): "
                  + ", ".join(f"`{t['drops_file']}`" for t in lossy) + ".", ""]
    return lines


def runs_lines(runs: list[dict[str, Any]]) -> list[str]:
    if not runs:
        return ["## Fine-tuned tasks (test split)", "", "No fine-tuned runs in the finetune output.", ""]
    rows = [[r["task"], _method(r) + (" (kept: stage 1, the head alone)" if r.get("best_stage") == 1 else ""),
             r["init"], fmt(r["seed"]),
             r["n_test"], *[r.get(m) for m in RUN_METRICS], _trainable(r),
             None if r.get("best_epoch") is None else f"{r['best_epoch']:g}"] for r in runs]
    return ["## Fine-tuned tasks (test split)", "",
            *table(["task", "method", "init", "seed", "test examples", *RUN_METRICS, "trained params", "best epoch"],
                   rows),
            "", "Classification: accuracy and macro-F1; tagging: entity-level precision / recall / F1 (exact "
            "span and type). Trained params: what the method trained (its share of the model's; a two-stage run "
            "whose validation peaked in stage 1 kept a checkpoint where only the head had trained); best epoch: "
            "where validation peaked, the checkpoint kept.", ""]


def _method(row: dict[str, Any]) -> str:
    """The method, and for two-stage what its second stage trained."""
    return row["method"] + (f" → {row['then']}" if row.get("then") else "")


def _trainable(run: dict[str, Any]) -> str | None:
    if run.get("trainable_params") is None:
        return None
    share = run.get("trainable_share")
    return f"{run['trainable_params']:,}" + (f" ({share:.1%})" if share is not None else "")


def gains_lines(gains: list[dict[str, Any]]) -> list[str]:
    if not gains:
        return []
    rows = [[g["task"], _method(g), g["metric"], pm(g["pretrained_mean"], g["pretrained_std"]), g["baseline"],
             pm(g["scratch_mean"], g["scratch_std"]), pm(g["gain_mean"], g["gain_std"]),
             f"[{fmt(g['gain_ci95'][0])}, {fmt(g['gain_ci95'][1])}]" if g.get("gain_ci95") else "—",
             ", ".join(map(str, g["paired_seeds"] or g["pretrained_seeds"]))] for g in gains]
    header = ["task", "method", "metric", "pretrained", "baseline", "scratch", "gain", "gain 95% (test resampling)",
              "seed ids"]
    return ["## Gain from pretraining (pretrained − scratch)", "", *table(header, rows), "",
            "Mean ± sample standard deviation over seeds; the gain is taken per seed when both ran it. The "
            "baseline is the same method from scratch, else full fine-tuning from scratch. The interval "
            "(accuracy, or span F1 for tagging) resamples the test examples 2,000 times, the same draw for "
            "every run, and recomputes the mean gain: the part of the uncertainty that is which examples "
            "the test split holds.", ""]


def markdown(report: dict[str, Any]) -> str:
    lines = ["# lmforge evaluation report", ""]
    lines += provenance_lines(report["provenance"], report.get("decontamination"))
    lines += lm_lines(report["lm"])
    lines += task_data_lines(report.get("task_data", []))
    lines += runs_lines(report["runs"])
    lines += gains_lines(report["gains"])
    return "\n".join(lines).rstrip() + "\n"


__all__ = ["markdown", "fmt", "METRICS"]
