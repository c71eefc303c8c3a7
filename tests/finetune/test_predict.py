"""``lmforge predict``: which fine-tuned run it uses, how it reads inputs, and that its predictions are the ones the
evaluate stage scores."""
from __future__ import annotations

import io
import json
import math
import os
import shutil
import time

import pytest

from finetune.test_stage import TASKS, WORDS, context, write_ner
from flows import cli
from pipeline import predict
from pipeline.predict import PAIR
from pipeline.store import Workspace
from pipeline.configtypes import build
from pipeline.finetune import FinetuneConfig, run
from pipeline.finetune.results import list_runs, read_jsonl, test_metrics
from pipeline.tasks import TasksConfig
from pipeline.tasks.metrics import span_counts, spans


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


def _read(texts, lines, kind="classification", jsonl=False, blank=None):
    return list(predict.read_inputs(texts, [x.encode() if isinstance(x, str) else x for x in lines], "f", kind,
                                    jsonl, blank))


def test_read_inputs_texts_lines_jsonl_and_pairs():
    blank = [0]
    got = _read(["one text"], ["\ufeffa line\r\n", "\n", "another\n"], blank=blank)
    assert got == [{"text": "one text", "argument": 1}, {"text": "a line", "line": 1}, {"text": "another", "line": 3}]
    assert blank == [1]  # counted, and each prediction keeps its line
    lines = ['{"text": "x"}\n', '{"tokens": ["use", "os.path"]}\n']
    assert _read([], lines, "tagging", jsonl=True) == [
        {"text": "x", "line": 1}, {"tokens": ["use", "os.path"], "text": "use os.path", "line": 2}]
    assert _read(["a\tb"], [], PAIR) == [{"text": "a", "text_pair": "b", "argument": 1}]
    assert _read([], ['{"text": "a", "text_pair": "b"}'], PAIR, jsonl=True) == [
        {"text": "a", "text_pair": "b", "line": 1}]
    for texts, lines, kind, jsonl, message in (
            ([], ["no tab"], PAIR, False, "f line 1: a pair task takes two non-empty texts separated by one tab"),
            ([], ["a\tb\tc"], PAIR, False, "got 3 part"),
            ([], ["\n", "{oops"], "classification", True, "f line 2: not JSON"),
            ([], ["[1]"], "classification", True, "f line 1: expected an object"),
            ([], ['{"text": ""}'], "classification", True, 'f line 1: no "text"'),
            ([], ['{"text": "a"}'], PAIR, True, 'f line 1: a pair task needs "text_pair"'),
            ([], ['{"tokens": ["a"], "text_pair": "b"}'], PAIR, True, '"tokens" is for a tagging task'),
            ([], ['{"text": "a", "text_pair": "b"}'], "classification", True, '"text_pair" is for a pair task'),
            ([], ['{"tokens": ["a", 1]}'], "tagging", True, '"tokens" must be a non-empty list of non-empty strings'),
            ([], [b"ok\n", b"caf\xe9\n"], "classification", False, "f line 2: not UTF-8 text"),
            (["x", ""], [], "classification", False, "argument 2: an empty text")):
        with pytest.raises(ValueError, match=message):
            _read(texts, lines, kind, jsonl)


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory, pretrained_root):
    tmp = tmp_path_factory.mktemp("predict")
    write_ner(tmp)
    rows = [{"text": f"{WORDS[i % 6]} {WORDS[(i + 1) % 6]} n{i}", "text_pair": f"{WORDS[(i * 5) % 6]} m{i}",
             "label": "same" if i % 6 == (i * 5) % 6 else "other"} for i in range(60)]
    (tmp / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pair = {"name": "pairs", "kind": PAIR, "source": "files", "train": "pairs.jsonl", "val_fraction": 0.2,
            "test_fraction": 0.2}
    tasks = build(TasksConfig, {"tasks": TASKS["tasks"] + [pair]})
    ctx = context(tmp, pretrained_root, tasks)
    cfg = FinetuneConfig(methods=["full"], seeds=[0, 1], epochs=2, batch_size=16, max_len=48, threads=1)
    run(cfg, ctx)
    return ctx.out, tasks


@pytest.mark.parametrize("task", ["stdlib_area", "ner", "pairs"])
def test_predictions_are_the_ones_evaluate_scores(finetuned, task):
    out, tasks = finetuned
    folder, chosen = predict.resolve(out, task, out.parent)
    best = max((r for r in list_runs(out) if r["task"] == task and r["init"] == "pretrained"),
               key=lambda r: r["best"][r["metric"]])
    assert folder == out / "runs" / task / f"full-pretrained-s{best['seed']}" / "model"
    assert chosen["seed"] == best["seed"]
    assert predict.resolve(folder.parent, None, out.parent)[0] == folder  # a run's folder, or its model/
    with pytest.raises(ValueError, match="is a model of task"):
        predict.resolve(folder, "other", out.parent)
    examples = read_jsonl(out / "tasks" / task / "test.jsonl")
    scored = test_metrics(folder.parent, tasks)
    if task == "ner":
        preds = predict.predict_examples(folder, [{"tokens": ex["tokens"]} for ex in examples])
        assert [p["tokens"] for p in preds] == [ex["tokens"] for ex in examples]
        assert [list(c) for c in span_counts([ex["tags"] for ex in examples], [p["tags"] for p in preds], "BIO")] \
            == [list(c) for c in scored["span_counts"]]  # per sentence: (correct, predicted, gold) spans
        assert all(0.0 < q <= 1.0 for p in preds for q in p["tag_probabilities"])
        for p in preds:  # the spans are the CoNLL chunks of the tags (an I- after O starts one too)
            assert [(s["type"], s["first"], s["last"]) for s in p["spans"]] == spans(p["tags"], "BIO")
            assert all(s["text"] == " ".join(p["tokens"][s["first"]:s["last"] + 1]) for s in p["spans"])
        assert sum(len(p["spans"]) for p in preds) > 0
    else:
        keys = ("text", "text_pair") if task == "pairs" else ("text",)
        preds = predict.predict_examples(folder, [{k: ex[k] for k in keys} for ex in examples])
        assert [int(ex["label"] == p["label"]) for ex, p in zip(examples, preds)] == scored["correct"]
        for p in preds:
            assert sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
            assert p["probability"] == max(p["probabilities"].values()) == p["probabilities"][p["label"]]


def test_a_long_input_is_cut_and_marked(finetuned):
    out, _ = finetuned
    folder, _ = predict.resolve(out, "stdlib_area", out.parent)
    short, long = predict.predict_examples(folder, [{"text": "Return a socket."}, {"text": "file " * 200}])
    assert (short["truncated"], long["truncated"]) == (False, True)
    tagger = out / "runs" / "ner" / "full-pretrained-s0" / "model"
    tagged = predict.predict_examples(tagger, [{"text": "the value " * 60}])
    first_cut = tagged[0]["first_cut_word"]
    assert tagged[0]["truncated"] and len(tagged[0]["tags"]) == 120 and 0 < first_cut < 120
    assert set(tagged[0]["tags"][first_cut:]) == {"O"} and set(tagged[0]["tag_probabilities"][first_cut:]) == {None}
    assert None not in tagged[0]["tag_probabilities"][:first_cut]
    assert predict.render(long).endswith("(truncated)")
    assert predict.render(tagged[0]).endswith(f"(truncated: words from {first_cut + 1} on are tagged O unseen)")
    line = predict.render({**short, "text": "two\tparts\nand a \\"})
    assert line.split("\t")[2] == "two\\tparts\\nand a \\\\"  # one line a prediction, whatever the text holds


def test_the_command(finetuned, capsys, monkeypatch, tmp_path, pretrained_root):
    out, _ = finetuned
    assert cli.main(["predict", "--model", str(out), "--task", "stdlib_area", "Return a socket.",
                     "Parse the XML file."]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 2 and lines[0].split("\t")[2] == "Return a socket."
    assert "task 'stdlib_area', run full-pretrained-s" in captured.err
    stdin = io.TextIOWrapper(io.BytesIO(b'{"tokens": ["the", "socket", "error"]}\n\n'))
    monkeypatch.setattr("sys.stdin", stdin)
    assert cli.main(["predict", "--model", str(out / "runs" / "ner"), "--file", "-", "--jsonl", "--json"]) == 0
    captured = capsys.readouterr()
    got = json.loads(captured.out)
    assert got["tokens"] == ["the", "socket", "error"] and len(got["tags"]) == 3 and got["line"] == 1
    assert "1 blank line(s) of stdin skipped" in captured.err
    run = out / "runs" / "stdlib_area" / "full-pretrained-s0"
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    weights = copy / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe not text\n")
    (tmp_path / "in.json").write_text('{"text": "x"}\n')
    (tmp_path / "empty").mkdir()
    for argv, message in (
            (["--model", str(out), "--task", "stdlib_area", "--file", str(bad)], "bad.txt line 1: not UTF-8 text"),
            (["--model", str(out), "--task", "stdlib_area", "--file", str(tmp_path)], "is a folder"),
            (["--model", str(out), "--task", "stdlib_area", "--file", str(tmp_path / "in.json")], "add --jsonl"),
            (["--model", str(bad.parent / "empty"), "x"], "no task model in"),
            (["--model", str(tmp_path / "nowhere"), "x"], "nowhere does not exist"),
            (["--model", str(pretrained_root / "model"), "x"], "holds a pretrained CausalLM, not a fine-tuned"),
            (["--model", str(copy), "x"], "copy is damaged: model/model.safetensors changed")):
        assert cli.main(["predict", *argv]) == 2, argv
        assert message in capsys.readouterr().err


def test_waiting_lines_answer_what_came_before_more_arrives():
    read, write = os.pipe()
    lines = predict.waiting_lines(read, size=4)
    os.write(write, b"first\nsecond\nthi")
    assert [next(lines), next(lines)] == [b"first\n", b"second\n"]
    assert next(lines) is None  # "thi" waits for its end; nothing more is waiting: the caller answers now
    os.write(write, b"rd\nlast")
    os.close(write)
    assert list(lines) == [b"third\n", b"last"]
    os.close(read)
    marked = list(predict.read_inputs([], [b"a\n", None, b"\n", b"b\n"], "stdin", "classification", False))
    assert marked == [{"text": "a", "line": 1}, None, {"text": "b", "line": 3}]  # the cue is passed on


def test_the_default_model_is_the_newest_intact_output_holding_the_task(finetuned, tmp_path):
    out, _ = finetuned
    work = tmp_path / "work"
    for key in ("older", "newer"):
        ws = Workspace(work, "finetune", key)
        shutil.copytree(out, ws.partial, symlinks=True)
        ws.publish("1", {}, {}, {}, None, 0.0)
        time.sleep(0.01)
    notes: list[str] = []
    assert predict.latest_output(work, "ner", notes) == work / "finetune" / "newer" and notes == []
    (work / "finetune" / "newer" / "runs" / "ner" / "full-scratch-s0" / "result.json").write_text("{}")
    assert predict.latest_output(work, "ner", notes) == work / "finetune" / "older"
    assert len(notes) == 1 and "newer" in notes[0] and "not used, as damaged" in notes[0]  # said, not silent
    folder, run = predict.resolve(None, "pairs", work)
    assert folder.parts[-5:-3] == ("older", "runs") and run["task"] == "pairs" and run["init"] == "pretrained"
    with pytest.raises(ValueError, match="allowed: ner, pairs, stdlib_area"):
        predict.latest_output(work, "nope")
    with pytest.raises(FileNotFoundError, match="no fine-tuned model in"):
        predict.latest_output(tmp_path / "elsewhere", None)


def test_pairs_render_and_a_model_refuses_inputs_of_another_kind(finetuned):
    out, _ = finetuned
    folder, _ = predict.resolve(out, "pairs", out.parent)
    model = predict.Predictor(folder)
    (p,) = model([{"text": "the socket", "text_pair": "file " * 80}])
    assert p["truncated"] and predict.render(p).endswith(" | " + ("file " * 80) + "  (truncated)")
    with pytest.raises(ValueError, match="example 1: a pair_classification model takes text and text_pair"):
        model([{"text": "the socket"}])
    tagger = predict.Predictor(predict.resolve(out, "ner", out.parent)[0])
    with pytest.raises(ValueError, match="example 1: a tagging model takes text, or tokens"):
        tagger([{"text": "a", "text_pair": "b"}])
