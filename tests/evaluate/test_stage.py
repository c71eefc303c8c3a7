"""The evaluate stage end to end on tiny real artifacts: tokenize output, a saved pretrained model, and the
finetune stage's own output (two seeds, pretrained and from scratch)."""
from __future__ import annotations

import hashlib
import json
import math
import statistics
from pathlib import Path

import numpy as np
import pytest

from pipeline.configtypes import ConfigError
from pipeline.evaluate import EvaluateConfig, resolve_texts, run
from pipeline.finetune import FinetuneConfig
from pipeline.finetune import run as finetune_run
from pipeline.finetune import results  # not "import test_metrics": pytest would collect it as a test
from pipeline.loader import TokenShards
from pipeline.stage import StageContext
from pipeline.store import Manifest
from pipeline.tokenize.tokenizer import Tokenizer

DECONT = {"docs_in": 80, "docs_removed": 3, "removed_by_task": {"animals": 3}}


@pytest.fixture(scope="module")
def finetuned(decoder, tasks_cfg, make_manifest, tmp_path_factory):
    cfg, root = tasks_cfg
    tmp = tmp_path_factory.mktemp("ft")
    ctx = StageContext(name="finetune", key="ft", out=tmp / "out", root=root, work=tmp / "work",
                       inputs={"model": decoder}, extra={"tasks": cfg})
    stats = finetune_run(FinetuneConfig(methods=["full"], seeds=[0, 1], epochs=1, max_steps=2, batch_size=8,
                                        max_len=32, device="cpu", threads=1), ctx)
    return make_manifest("finetune", "ft", ctx.out, stats)


def evaluate(tmp_path, tokens, model, tasks_cfg, finetune=None, **cfg):
    cfg_tasks, root = tasks_cfg
    inputs = {"model": model, "tokens": tokens,
              "decontaminate": Manifest("decontaminate", "dc", "1", {}, {"docs": "dd"}, {}, DECONT, path=tmp_path)}
    if finetune is not None:
        inputs["finetune"] = finetune
    ctx = StageContext(name="evaluate", key="ev", out=tmp_path / "out", root=root, inputs=inputs,
                       extra={"tasks": cfg_tasks})
    return run(EvaluateConfig(device="cpu", batch_size=4, **cfg), ctx), ctx


def test_report_scores_every_run_and_the_gain(tmp_path, tokens, decoder, tasks_cfg, finetuned):
    stats, ctx = evaluate(tmp_path, tokens, decoder, tasks_cfg, finetuned)
    report = json.loads((ctx.reports / "report.json").read_text())
    md = (ctx.reports / "report.md").read_text()
    runs = results.list_runs(finetuned.path)
    assert [(r["method"], r["init"], r["seed"]) for r in runs] == [
        ("full", "pretrained", 0), ("full", "pretrained", 1), ("full", "scratch", 0), ("full", "scratch", 1)]
    assert stats["runs"] == 4 and len(report["runs"]) == 4
    for r, got in zip(runs, report["runs"]):
        want = results.test_metrics(Path(r["run_dir"]), tasks_cfg[0])
        assert got["accuracy"] == want["accuracy"] and got["macro_f1"] == want["macro_f1"]
        assert got["n_test"] == want["n_test"] == 12
        line = f"| animals | full | {r['init']} | {r['seed']} | 12 | {want['accuracy']:.4f} | {want['macro_f1']:.4f} |"
        assert line in md
    pre = [r["accuracy"] for r in report["runs"] if r["init"] == "pretrained"]
    scr = [r["accuracy"] for r in report["runs"] if r["init"] == "scratch"]
    (acc,) = [g for g in report["gains"] if g["metric"] == "accuracy"]
    assert acc["gain_mean"] == pytest.approx(statistics.fmean(pre) - statistics.fmean(scr))
    assert acc["gain_std"] == pytest.approx(statistics.stdev([p - s for p, s in zip(pre, scr)]))
    assert stats["gain"]["animals"]["full"]["accuracy"] == pytest.approx(acc["gain_mean"])
    for r in runs:  # each run's test-split scores and confusion matrix, beside the report
        name = Path(r["run_dir"]).name
        per_label = json.loads((ctx.reports / "animals" / f"{name}.test.per_label.json").read_text())
        assert per_label["split"] == "test" and per_label["accuracy"] == results.test_metrics(
            Path(r["run_dir"]), tasks_cfg[0])["accuracy"] and "correct" not in per_label
        assert (ctx.reports / "animals" / f"{name}.test.confusion.png").read_bytes()[:4] == b"\x89PNG"
    test = stats["test"]["animals"]["full"]  # the report's test figures as metrics, mean over seeds
    assert test["pretrained"]["accuracy"] == pytest.approx(statistics.fmean(pre))
    assert test["scratch"]["accuracy"] == pytest.approx(statistics.fmean(scr))
    assert set(test["scratch"]) == {"accuracy", "macro_f1"}
    lo, hi = acc["gain_ci95"]  # from the runs' per-example scores, around the gain
    assert lo <= acc["gain_mean"] <= hi and f"[{lo:.4f}, {hi:.4f}]" in md
    full = stats["gain"]["animals"]["full"]  # the stage's figures, logged to MLflow
    assert (full["accuracy_ci95_lo"], full["accuracy_ci95_hi"]) == (lo, hi) and "macro_f1_ci95_lo" not in full
    for key in ("`dc`", "`tok`", "`pre-decoder`", "`ft`", "docs: dd", "removed **3** of 80"):
        assert key in md
    assert stats["docs_removed"] == 3
    (data,) = report["task_data"]  # rows kept per split, and the train file's two bad rows, by reason
    assert (data["task"], data["n_train"], data["n_validation"], data["n_test"]) == ("animals", 24, 12, 12)
    assert data["dropped"] == 2 and data["dropped_by_reason"] == {"empty_text": 1, "missing_label": 1}
    drops = json.loads(Path(data["drops_file"]).read_text())
    assert drops["task"] == "animals" and drops["samples"]["missing_label"][0]["where"].endswith("train.jsonl:25")
    # inputs cut at max_len per split (test: the scored runs' count, once missing from the report)
    assert data["truncated"] == {"train": 0, "validation": 0, "test": 0}
    assert "| animals | 24 | 12 | 12 | 0 / 0 / 0 | 2 | empty_text 1, missing_label 1 |" in md
    assert f"`{data['drops_file']}`" in md


def test_language_model_figures_and_unigram_baseline(tmp_path, tokens, decoder, tasks_cfg):
    stats, ctx = evaluate(tmp_path, tokens, decoder, tasks_cfg)
    val, train = TokenShards(tokens.path, "val"), TokenShards(tokens.path, "train")
    assert stats["val_tokens"] == val.n_tokens - 1 and stats["runs"] == 0
    assert stats["val_ppl"] == pytest.approx(math.exp(stats["val_loss"]))
    # The unigram baseline by hand: add-one train frequencies on the same targets.
    counts = np.zeros(val.vocab_size)
    for t in train.tokens:
        counts += np.bincount(t, minlength=val.vocab_size)
    p = (counts + 1) / (counts.sum() + val.vocab_size)
    y = val.window(1, val.n_tokens - 1).astype(np.int64)
    bpb = -np.log(p[y]).sum() / math.log(2) / val.token_bytes[y].sum()
    assert stats["unigram_bpb"] == pytest.approx(bpb, rel=1e-9)
    assert stats["bpb_gain_over_unigram"] == pytest.approx(stats["unigram_bpb"] - stats["val_bpb"])
    md = (ctx.reports / "report.md").read_text()
    assert f"| validation split | unigram baseline | {len(y):,} |" in md and "No fine-tuned runs" in md


def test_extra_texts_and_a_missing_one(tmp_path, tokens, decoder, tasks_cfg):
    root = tasks_cfg[1]
    text = "the cat sat on the mat and then the dog ran.\n" * 30
    (root / "texts").mkdir(exist_ok=True)
    (root / "texts" / "story.txt").write_text(text)
    stats, ctx = evaluate(tmp_path, tokens, decoder, tasks_cfg, extra_texts=["texts/story.txt"])
    tok = Tokenizer.from_dir(decoder.path / "model")
    extra = stats["extra"]["texts_story"]
    assert extra["tokens"] == len(tok.encode(text))
    rows = json.loads((ctx.reports / "report.json").read_text())["lm"]["rows"]
    (row,) = [r for r in rows if r["data"] == "texts_story"]
    assert row["digest"] == hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
    assert f"(blake2b-128 `{row['digest']}`, {len(text):,} characters)" in (ctx.reports / "report.md").read_text()
    assert row["bytes"] == len(text.encode()) and row["bpb"] == pytest.approx(
        row["loss"] * row["tokens"] / math.log(2) / len(text.encode()))
    names = [n for n, _ in resolve_texts(EvaluateConfig(extra_texts=["texts/story.txt"] * 2), root)]
    assert names == ["texts_story", "texts_story_1"]
    with pytest.raises(ConfigError, match=r"evaluate.extra_texts\[1\]: no file 'texts/nope.txt'"):
        evaluate(tmp_path / "b", tokens, decoder, tasks_cfg, extra_texts=["texts/story.txt", "texts/nope.txt"])
    with pytest.raises(ConfigError, match=r"^evaluate.extra_texts\[0\]: 'texts' is a folder \(resolved to .*\); "
                       r"name a file$"):
        resolve_texts(EvaluateConfig(extra_texts=["texts"]), root)
    # an empty, blank or undecodable file once scored as nan, or failed with no file named
    (root / "texts" / "empty.txt").write_bytes(b"")
    (root / "texts" / "blank.txt").write_bytes(b" \n\n")
    (root / "texts" / "latin.txt").write_bytes(b"caf\xe9 au lait\n")
    (root / "texts" / "wide.txt").write_bytes("wide text\n".encode("utf-16"))
    (root / "texts" / "bare.txt").write_bytes("wide text\n".encode("utf-16-le"))
    (root / "texts" / "stray.txt").write_bytes(b"real text with one stray NUL \x00 in it\n")  # scraped: still text
    assert resolve_texts(EvaluateConfig(extra_texts=["texts/stray.txt"]), root)
    cases = (("empty", "is empty"), ("blank", "holds only whitespace"), ("latin", r"is not UTF-8 text \(byte 3"),
             ("wide", r"is not UTF-8 text \(byte 0: b'\\xff'\); UTF-16 \(its byte-order mark says so\): convert it "
                      "first, e.g. iconv -f UTF-16 -t UTF-8"),
             ("bare", r"holds NUL bytes throughout \(UTF-16 without a byte-order mark\?\)"))
    for name, match in cases:
        with pytest.raises(ConfigError, match=rf"evaluate.extra_texts\[0\]: 'texts/{name}.txt' {match}"):
            resolve_texts(EvaluateConfig(extra_texts=[f"texts/{name}.txt"]), root)
    from pipeline.evaluate import fingerprint
    for name, match in cases:  # at planning already (a Latin-1 file stopped the run at its end, after pretraining)
        with pytest.raises(ConfigError, match=rf"evaluate.extra_texts\[0\]: 'texts/{name}.txt' {match}"):
            fingerprint(EvaluateConfig(extra_texts=[f"texts/{name}.txt"]), root)


def test_max_eval_tokens_limits_the_validation_targets(tmp_path, tokens, decoder, tasks_cfg):
    stats, _ = evaluate(tmp_path, tokens, decoder, tasks_cfg, max_eval_tokens=100)
    assert stats["val_tokens"] == 128  # whole batches: 4 windows of the model's 32 positions


def test_encoder_decoder_reports_span_loss_and_accuracy(tmp_path, tokens, encoder_decoder, tasks_cfg):
    root = tasks_cfg[1]
    (root / "texts").mkdir(exist_ok=True)
    (root / "texts" / "t5.txt").write_text("the cat sat on the mat and then the dog ran.\n" * 30)
    stats, ctx = evaluate(tmp_path, tokens, encoder_decoder, tasks_cfg, extra_texts=["texts/t5.txt"])
    assert "val_bpb" not in stats and "val_ppl" not in stats and 0.0 < stats["val_accuracy"] < 1.0
    assert stats["val_loss"] > 0 and stats["val_tokens"] > 0
    # an extra text is span-corrupted too (its one-document split once had no sentinels to do it with)
    assert set(stats["extra"]["texts_t5"]) == {"loss", "accuracy", "tokens", "encoder_gain"}
    assert stats["extra"]["texts_t5"]["tokens"] and isinstance(stats["val_encoder_gain"], float)
    md = (ctx.reports / "report.md").read_text()
    assert "encoder-decoder, span corruption" in md and "15% of its tokens cut out in spans of 3 tokens" in md
    assert "Bits per byte =" not in md and "| target accuracy |" in md
    gain = round(stats["val_encoder_gain"], 4) + 0.0
    assert f"its loss {'rises' if gain >= 0 else 'falls'} by **{abs(gain):.4f}** nats per target" in md
    assert "| encoder gain (nats/target) |" in md and "-0.0000" not in md
    report = json.loads((ctx.reports / "report.json").read_text())
    assert report["lm"]["objective"] == "span" and report["lm"]["mask_rate"] == 0.15 and report["lm"]["mean_span"] == 3
    # its own yardstick: other spans, other figures, and the report says which
    other, ctx2 = evaluate(tmp_path / "b", tokens, encoder_decoder, tasks_cfg, mean_span=6.0, mask_rate=0.3)
    assert other["val_loss"] != stats["val_loss"] and "30% of its tokens cut out in spans of 6 tokens" in (
        ctx2.reports / "report.md").read_text()


def test_encoder_reports_masked_lm_loss_and_accuracy(tmp_path, tokens, encoder, tasks_cfg):
    stats, ctx = evaluate(tmp_path, tokens, encoder, tasks_cfg)
    assert "val_bpb" not in stats and "val_ppl" not in stats and 0.0 <= stats["val_accuracy"] <= 1.0
    assert stats["val_loss"] > 0 and stats["val_tokens"] > 0
    md = (ctx.reports / "report.md").read_text()
    assert "masked LM: loss and accuracy on masked positions; no perplexity" in md
    assert "Bits per byte =" not in md and "scored on the masked positions only" in md  # no bpb column to explain


def test_the_task_data_table_shows_the_inputs_each_split_cut():
    from pipeline.evaluate.report import task_data_lines
    t = {"task": "t", "n_train": 10, "n_validation": 4, "n_test": 5, "dropped": 0, "dropped_by_reason": {},
         "drops_file": "x", "truncated": {"train": 7, "validation": 1, "test": 3}}
    assert "| t | 10 | 4 | 5 | 7 / 1 / 3 | 0 | — |" in "\n".join(task_data_lines([t]))
    old = {k: v for k, v in t.items() if k != "truncated"}  # (a report.json written before the column)
    assert "| t | 10 | 4 | 5 | — / — / — | 0 | — |" in "\n".join(task_data_lines([old]))
