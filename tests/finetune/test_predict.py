"""``lmforge predict``: which fine-tuned run it uses, how it reads inputs, and that its predictions are the ones the
evaluate stage scores."""
from __future__ import annotations

import io
import json
import math

import pytest

from finetune.test_stage import TASKS, context, write_ner
from flows import cli
from pipeline import predict
from pipeline.configtypes import build
from pipeline.finetune import FinetuneConfig, run
from pipeline.finetune.results import list_runs, read_jsonl, test_metrics
from pipeline.tasks import TasksConfig
from pipeline.tasks.metrics import spans


def _run(task, method, init, seed, value, metric="accuracy"):
    return {"task": task, "method": method, "init": init, "seed": seed, "metric": metric, "best": {metric: value},
            "run_dir": f"/x/{task}/{method}-{init}-s{seed}"}


def test_best_run_is_the_best_pretrained_run_on_the_selection_metric(tmp_path):
    runs = [_run("a", "full", "pretrained", 0, 0.70), _run("a", "full", "scratch", 0, 0.90),
            _run("a", "lora", "pretrained", 0, 0.75), _run("a", "lora", "pretrained", 1, 0.75),
            _run("b", "full", "pretrained", 0, 0.99)]
    chosen = predict.best_run(runs, "a", tmp_path)
    assert (chosen["method"], chosen["init"], chosen["seed"]) == ("lora", "pretrained", 0)  # the tie: the earlier
    with pytest.raises(ValueError, match="holds the tasks a, b: name one with --task"):
        predict.best_run(runs, None, tmp_path)
    with pytest.raises(ValueError, match=r"--task: got 'c', allowed: a, b"):
        predict.best_run(runs, "c", tmp_path)
    assert predict.best_run(runs[:2], None, tmp_path)["init"] == "pretrained"  # never the baseline when both ran
    by_loss = [_run("a", "full", "pretrained", s, v, "loss") for s, v in enumerate((0.5, 0.3, math.nan))]
    assert predict.best_run(by_loss, "a", tmp_path)["seed"] == 1  # a loss: the lowest; NaN never wins


def test_read_inputs_texts_lines_jsonl_and_pairs():
    got = predict.read_inputs(["one text"], ["a line\n", "\n", "another\n"], "f.txt", pair=False, jsonl=False)
    assert got == [{"text": "one text"}, {"text": "a line"}, {"text": "another"}]
    lines = ['{"text": "x"}\n', '{"tokens": ["use", "os.path"]}\n']
    assert predict.read_inputs([], lines, "f.jsonl", pair=False, jsonl=True) == [
        {"text": "x"}, {"tokens": ["use", "os.path"], "text": "use os.path"}]
    assert predict.read_inputs(["a\tb"], [], "", pair=True, jsonl=False) == [{"text": "a", "text_pair": "b"}]
    for lines, pair, jsonl, message in (
            (["no tab"], True, False, "f line 1: a pair task takes two texts separated by a tab"),
            (["\n", "{oops"], False, True, "f line 2: not JSON"),
            (["[1]"], False, True, "f line 1: expected an object"),
            (['{"text": ""}'], False, True, 'f line 1: no "text"'),
            (['{"text": "a"}'], True, True, 'f line 1: a pair task needs "text_pair"'),
            (["", "  "], False, False, "nothing to predict")):
        with pytest.raises(ValueError, match=message):
            predict.read_inputs([], lines, "f", pair=pair, jsonl=jsonl)


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory, pretrained_root):
    tmp = tmp_path_factory.mktemp("predict")
    write_ner(tmp)
    tasks = build(TasksConfig, TASKS)
    ctx = context(tmp, pretrained_root, tasks)
    cfg = FinetuneConfig(methods=["full"], seeds=[0, 1], epochs=2, batch_size=16, max_len=48, threads=1)
    run(cfg, ctx)
    return ctx.out, tasks


@pytest.mark.parametrize("task", ["stdlib_area", "ner"])
def test_predictions_are_the_ones_evaluate_scores(finetuned, task):
    out, tasks = finetuned
    folder, chosen = predict.resolve(out, task, out.parent)
    best = max((r for r in list_runs(out) if r["task"] == task and r["init"] == "pretrained"),
               key=lambda r: r["best"][r["metric"]])
    assert folder == out / "runs" / task / f"full-pretrained-s{best['seed']}" / "model" and chosen["seed"] == best["seed"]
    assert predict.resolve(folder.parent, None, out.parent)[0] == folder  # a run's folder, or its model/
    with pytest.raises(ValueError, match="is a model of task"):
        predict.resolve(folder, "other", out.parent)
    examples = read_jsonl(out / "tasks" / task / "test.jsonl")
    scored = test_metrics(folder.parent, tasks)
    if task == "ner":
        preds = predict.predict_examples(folder, [{"tokens": ex["tokens"]} for ex in examples])
        assert [p["tokens"] for p in preds] == [ex["tokens"] for ex in examples]
        correct = sum(g == p for ex, pr in zip(examples, preds) for g, p in zip(ex["tags"], pr["tags"]))
        assert correct / sum(len(ex["tags"]) for ex in examples) == pytest.approx(scored["accuracy"])
        assert all(0.0 < q <= 1.0 for p in preds for q in p["tag_probabilities"])
        for p in preds:  # the spans are the CoNLL chunks of the tags (an I- after O starts one too)
            assert [(s["type"], s["first"], s["last"]) for s in p["spans"]] == spans(p["tags"], "BIO")
            assert all(s["text"] == " ".join(p["tokens"][s["first"]:s["last"] + 1]) for s in p["spans"])
        assert sum(len(p["spans"]) for p in preds) > 0
    else:
        preds = predict.predict_examples(folder, [{"text": ex["text"]} for ex in examples])
        assert [int(ex["label"] == p["label"]) for ex, p in zip(examples, preds)] == scored["correct"]
        for p in preds:
            assert sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
            assert p["probability"] == max(p["probabilities"].values()) == p["probabilities"][p["label"]]


def test_a_long_input_is_cut_and_marked(finetuned):
    out, _ = finetuned
    folder, _ = predict.resolve(out, "stdlib_area", out.parent)
    short, long = predict.predict_examples(folder, [{"text": "Return a socket."}, {"text": "file " * 200}])
    assert (short["truncated"], long["truncated"]) == (False, True)
    tagged = predict.predict_examples(out / "runs" / "ner" / "full-pretrained-s0" / "model", [{"text": "the value " * 60}])
    assert tagged[0]["truncated"] and len(tagged[0]["tags"]) == 120 and tagged[0]["tags"][-1] == "O"
    assert predict.render(long).endswith("(truncated)")


def test_the_command(finetuned, capsys, monkeypatch, tmp_path):
    out, _ = finetuned
    assert cli.main(["predict", "--model", str(out), "--task", "stdlib_area", "Return a socket.",
                     "Parse the XML file."]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 2 and lines[0].split("\t")[2] == "Return a socket."
    assert "task 'stdlib_area', run full-pretrained-s" in captured.err
    monkeypatch.setattr("sys.stdin", io.StringIO('{"tokens": ["the", "socket", "error"]}\n'))
    assert cli.main(["predict", "--model", str(out), "--task", "ner", "--file", "-", "--jsonl", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["tokens"] == ["the", "socket", "error"] and len(got["tags"]) == 3
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe not text\n")
    assert cli.main(["predict", "--model", str(out), "--task", "stdlib_area", "--file", str(bad)]) == 2
    assert "bad.txt: not UTF-8 text" in capsys.readouterr().err
    assert cli.main(["predict", "--model", str(tmp_path), "x"]) == 2
    assert "no task model in" in capsys.readouterr().err
