"""Files a config names outside the store (tokenize.tokenizer_path, pretrain.init_from, evaluate.extra_texts):
their current state is part of the reading stage's key, and a missing one is a ConfigError at planning that
names the key, not a traceback hours into a run."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from finetune.tiny_pretrained import tokenizer_bytes
from flows import env
from flows.cli import main as cli_main
from pipeline import config
from pipeline.configtypes import ConfigError
from pipeline.plan import compute
from pipeline.pretrain import MODEL_FILES  # what model.load_model reads (tests/pretrain checks the two agree)
DOWNSTREAM_OF_TOKENIZE = {"tokenize", "pretrain", "finetune", "evaluate"}


def keys(root: Path, *overrides: str) -> dict[str, str]:
    return {p.name: p.key for p in compute(config.load("tiny", overrides=list(overrides)), root, root)}


def rewrite(path: Path, data: bytes, mtime_ns: int) -> None:
    """Other bytes with another size and modification time: what replacing the file does."""
    path.write_bytes(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def model_folder(folder: Path) -> Path:
    """The files of a saved model; its config is the tiny preset's model (planning checks the architecture)."""
    from dataclasses import asdict
    folder.mkdir(parents=True)
    for name in MODEL_FILES:
        (folder / name).write_bytes(b"{}")
    (folder / "model_config.json").write_text(json.dumps(asdict(config.load("tiny").pretrain.model)))
    return folder


def test_without_outside_files_tokenize_and_pretrain_keys_have_no_external_input(tmp_path):
    """The default (no tokenizer_path, no init_from): inputs are upstream (data) keys only."""
    plan = {p.name: p for p in compute(config.load("tiny"), tmp_path, tmp_path)}
    assert plan["tokenize"].inputs == {"docs": plan["decontaminate"].data_key}
    assert plan["tokenize"].data_key == plan["tokenize"].key  # no report-only settings: its data key is its key
    assert plan["pretrain"].inputs == {"tokens": plan["tokenize"].key}


def test_replacing_the_tokenizer_model_file_changes_the_tokenize_key(tmp_path):
    tok = tmp_path / "x" / "tok.model"
    tok.parent.mkdir()
    rewrite(tok, tokenizer_bytes(0), 1_000_000_000_000_000_000)
    over = "tokenize.tokenizer_path=x/tok.model"
    before = keys(tmp_path, over)
    assert keys(tmp_path, over) == before  # nothing changed: same keys
    rewrite(tok, tokenizer_bytes(1), 1_000_000_002_000_000_000)
    after = keys(tmp_path, over)
    assert {name for name in before if before[name] != after[name]} == DOWNSTREAM_OF_TOKENIZE
    # a folder holding tokenizer.model (a tokenize output, a pretrained model) is fingerprinted the same way
    (tmp_path / "m" / "tokenizer").mkdir(parents=True)
    rewrite(tmp_path / "m" / "tokenizer" / "tokenizer.model", tokenizer_bytes(0), 1_000_000_000_000_000_000)
    first = keys(tmp_path, "tokenize.tokenizer_path=m")
    rewrite(tmp_path / "m" / "tokenizer" / "tokenizer.model", tokenizer_bytes(1), 1_000_000_001_000_000_000)
    assert keys(tmp_path, "tokenize.tokenizer_path=m")["tokenize"] != first["tokenize"]
    # a file that is no sentencepiece model: said at planning, not as three tracebacks when tokenize runs
    for junk in (b"plain text, not a model\n", b""):  # (an empty file loads as a model of no pieces)
        rewrite(tok, junk, 1_000_000_003_000_000_000)
        with pytest.raises(ConfigError, match=r"^tokenize.tokenizer_path: .*/x/tok.model is not a sentencepiece"):
            keys(tmp_path, over)


def test_replacing_the_init_from_model_changes_the_pretrain_key(tmp_path):
    folder = model_folder(tmp_path / "base")
    over = f"pretrain.init_from={folder}"
    before = keys(tmp_path, over)
    assert keys(tmp_path, over) == before
    rewrite(folder / "model.safetensors", b"other weights", 1_000_000_003_000_000_000)
    after = keys(tmp_path, over)
    assert {name for name in before if before[name] != after[name]} == {"pretrain", "finetune", "evaluate"}


def test_a_reused_tokenizer_or_model_counts_by_content_not_by_how_its_path_is_spelled(tmp_path):
    (tmp_path / "m" / "tokenizer").mkdir(parents=True)
    (tmp_path / "m" / "tokenizer" / "tokenizer.model").write_bytes(tokenizer_bytes(0))
    model_folder(tmp_path / "m" / "model")
    (tmp_path / "copy").mkdir()  # an identical copy elsewhere
    for name in ("tokenizer", "model"):
        shutil.copytree(tmp_path / "m" / name, tmp_path / "copy" / name)
    spellings = ("m", "./m", "m//", str(tmp_path / "m"), "copy")
    seen = {keys(tmp_path, f"tokenize.tokenizer_path={s}/tokenizer/tokenizer.model",
                 f"pretrain.init_from={s}/model")["pretrain"] for s in spellings}
    assert len(seen) == 1
    plan = {p.name: p for p in compute(config.load("tiny", overrides=[
        "tokenize.tokenizer_path=./m/tokenizer/tokenizer.model", "pretrain.init_from=copy/model"]), tmp_path, tmp_path)}
    # the plan (MLflow params, the manifest) shows the paths as set
    assert plan["tokenize"].config["tokenizer_path"] == "./m/tokenizer/tokenizer.model"
    assert plan["pretrain"].config["init_from"] == "copy/model"
    assert plan["pretrain"].key in seen


def test_init_from_a_fine_tuned_task_model_is_refused_at_planning(tmp_path):
    folder = model_folder(tmp_path / "run")
    (folder / "meta.json").write_text(json.dumps({"task": "sst2", "method": "lora", "arch": "decoder"}))
    with pytest.raises(ConfigError, match=r"^pretrain\.init_from: .*/run is a fine-tuned model of task 'sst2' \(a "
                                          r"trunk with a task head\), not a pretrained LM"):
        keys(tmp_path, "pretrain.init_from=run")


@pytest.mark.parametrize("override, message", [
    ("tokenize.tokenizer_path=nope/tok.model",
     r"^tokenize\.tokenizer_path: no tokenizer model at {root}/nope/tok\.model"),
    ("pretrain.init_from=nope", r"^pretrain\.init_from: no model at {root}/nope \(model_config\.json, "
                                r"model\.safetensors, meta\.json missing\)$"),
    ('evaluate.extra_texts=["a.txt", "nope.txt"]', r"^evaluate\.extra_texts\[1\]: no file 'nope\.txt' "
                                                   r"\(resolved to {root}/nope\.txt\)$"),
    ('tasks.tasks=[{"name": "t", "kind": "classification", "source": "files", "train": "a.txt", "test": "no.csv"}]',
     r"^tasks\.tasks\[t\]\.test: no file 'no\.csv' \(resolved to {root}/no\.csv\)$"),
])
def test_a_missing_outside_file_is_a_config_error_at_planning(tmp_path, override, message):
    (tmp_path / "a.txt").write_text("text\n")
    root = tmp_path.resolve()
    with pytest.raises(ConfigError, match=message.format(root=re.escape(str(root)))):
        compute(config.load("tiny", overrides=[override]), root, root)


def test_a_partial_model_folder_names_what_is_missing(tmp_path):
    folder = model_folder(tmp_path / "base")
    (folder / "model_config.json").write_text("[]")
    with pytest.raises(ConfigError, match=r"model_config.json is not a model config \(a JSON list\)"):
        keys(tmp_path, "pretrain.init_from=base")
    (folder / "model_config.json").unlink()
    with pytest.raises(ConfigError, match=r"^pretrain\.init_from: no model at .*/base \(model_config\.json missing\)$"):
        keys(tmp_path, "pretrain.init_from=base")


def test_a_relative_init_from_is_taken_from_the_project_root_not_the_current_directory(tmp_path, monkeypatch):
    root, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    folder = model_folder(root / "models" / "base")
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    from pipeline.pretrain import init_model_dir
    assert init_model_dir("models/base", root) == folder.resolve()
    assert keys(root, "pretrain.init_from=models/base")["pretrain"] != keys(root)["pretrain"]


def test_cli_dry_run_stops_with_the_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LMFORGE_ROOT", str(tmp_path))
    monkeypatch.setattr(env, "apply", lambda root: None)  # keep this process's environment as it is
    assert cli_main(["run", "--preset", "tiny", "--dry-run", "--set", "pretrain.init_from=/nope"]) == 2
    err = capsys.readouterr().err
    assert err == "lmforge: error: pretrain.init_from: no model at /nope (model_config.json, model.safetensors, " \
                  "meta.json missing)\n"


def test_continued_pretraining_reuses_the_models_own_tokenizer(tmp_path, monkeypatch, capsys):
    """Without tokenize.tokenizer_path, init_from's tokenizer (its folder's tokenizer/) is the one tokenize uses:
    a tokenizer trained afresh was refused only when pretraining started, after ingest to tokenize had run."""
    folder = model_folder(tmp_path / "m" / "model")
    (folder / "tokenizer").mkdir()
    (folder / "tokenizer" / "tokenizer.model").write_bytes(tokenizer_bytes(0))
    cfg = config.with_init_tokenizer(config.load("tiny", overrides=["pretrain.init_from=m/model"]), tmp_path)
    assert cfg.tokenize.tokenizer_path == "m/model" and cfg.pretrain.init_from == "m/model"
    explicit = "tokenize.tokenizer_path=m/model/tokenizer/tokenizer.model"
    assert keys(tmp_path, "pretrain.init_from=m/model", explicit)["tokenize"] == \
        {p.name: p.key for p in compute(cfg, tmp_path, tmp_path)}["tokenize"]
    mine = config.load("tiny", overrides=["pretrain.init_from=m/model", "tokenize.tokenizer_path=other.model"])
    assert config.with_init_tokenizer(mine, tmp_path) is mine  # one the config names is kept (and checked)
    (folder / "tokenizer" / "tokenizer.model").unlink()  # no tokenizer beside the model (a checkpoint/ folder):
    bare = config.load("tiny", overrides=["pretrain.init_from=m/model"])  # a fresh one gave ids other meanings
    with pytest.raises(ConfigError, match=r"^pretrain\.init_from: m/model holds no tokenizer \(tokenizer/tokenizer"
                                          r"\.model\).*its checkpoint/ folder is for resuming"):
        config.with_init_tokenizer(bare, tmp_path)
    unchanged = config.load("tiny", overrides=["pretrain.init_from=m"])  # no model there: planning says so
    assert config.with_init_tokenizer(unchanged, tmp_path) is unchanged  # (and gc, which tolerates it, goes on)
    with pytest.raises(ConfigError, match=r"no model at .*/m \(model_config\.json, model\.safetensors, meta\.json "
                                          r"missing\); the model of that output is in .*/m/model$"):
        keys(tmp_path, "pretrain.init_from=m")
    (folder / "tokenizer" / "tokenizer.model").write_bytes(tokenizer_bytes(0))
    monkeypatch.setenv("LMFORGE_ROOT", str(tmp_path))  # the command line applies it
    monkeypatch.setattr(env, "apply", lambda root: None)
    assert cli_main(["run", "--preset", "tiny", "--dry-run", "--set", "pretrain.init_from=m/model"]) == 0
    tokenize_line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("tokenize "))
    assert tokenize_line.split()[1] == keys(tmp_path, "pretrain.init_from=m/model", explicit)["tokenize"]


def test_a_tasks_train_file_and_train_cap_leave_the_pretraining_corpus_alone(tmp_path):
    """Decontamination reads the evaluation splits only: editing a task's train file (or max_train) once
    rebuilt decontaminate, tokenize and pretraining. With its validation and test cut from train, train is
    what they are made of, and it counts."""
    rows = "text,label\n" + "".join(f"row {i},{i % 2}\n" for i in range(20))
    for name in ("tr.csv", "va.csv", "te.csv"):
        (tmp_path / name).write_text(rows)
    task = '{"name": "t", "kind": "classification", "source": "files", "train": "tr.csv"%s}'
    files = task % ', "validation": "va.csv", "test": "te.csv"'
    before = keys(tmp_path, f"tasks.tasks=[{files}]")
    rewrite(tmp_path / "tr.csv", (rows + "one more,1\n").encode(), 1_000_000_005_000_000_000)
    after = keys(tmp_path, f"tasks.tasks=[{files}]")
    assert {n for n in before if before[n] != after[n]} == {"finetune", "evaluate"}
    capped = keys(tmp_path, f"tasks.tasks=[{files[:-1]}, \"max_train\": 5}}]")
    assert {n for n in after if after[n] != capped[n]} == {"finetune", "evaluate"}
    rewrite(tmp_path / "te.csv", (rows + "one more,1\n").encode(), 1_000_000_006_000_000_000)
    assert keys(tmp_path, f"tasks.tasks=[{files}]")["decontaminate"] != after["decontaminate"]
    cut = keys(tmp_path, f"tasks.tasks=[{task % ''}]")
    rewrite(tmp_path / "tr.csv", rows.encode(), 1_000_000_007_000_000_000)
    assert keys(tmp_path, f"tasks.tasks=[{task % ''}]")["decontaminate"] != cut["decontaminate"]


def test_what_still_decides_the_evaluation_texts_stays_in_the_decontaminate_key(tmp_path):
    """Left out of the key, these once served a stale corpus: split_seed when it samples the splits (max_eval),
    the cut and max_train when train is among decontaminate.splits, a tagging train file the scheme comes from."""
    rows = "text,label\n" + "".join(f"row {i},{i % 2}\n" for i in range(20))
    for name in ("tr.csv", "va.csv", "te.csv"):
        (tmp_path / name).write_text(rows)
    task = '{"name": "t", "source": "files", "train": "tr.csv", "validation": "va.csv", "test": "te.csv"%s}'
    decont = lambda extra="", *sets: keys(tmp_path, f"tasks.tasks=[{task % extra}]", *sets)["decontaminate"]
    assert decont(', "max_eval": 5, "split_seed": 1') != decont(', "max_eval": 5')
    assert decont(', "split_seed": 1') == decont()  # without max_eval it samples nothing
    train_too = "decontaminate.splits=train,test"
    assert decont(', "max_train": 5', train_too) != decont("", train_too)
    conll = "EU B-ORG\nsays O\n\n"
    for name in ("tr.conll", "va.conll", "te.conll"):
        (tmp_path / name).write_text(conll)
    tag = ('{"name": "n", "kind": "tagging", "source": "files", "train": "tr.conll", "validation": "va.conll", '
           '"test": "te.conll"%s}')
    tagged = lambda extra="": keys(tmp_path, f"tasks.tasks=[{tag % extra}]")["decontaminate"]
    auto, fixed = tagged(), tagged(', "scheme": "BIO"')
    rewrite(tmp_path / "tr.conll", b"EU S-ORG\nsays O\n\n", 1_000_000_009_000_000_000)
    assert tagged() != auto and tagged(', "scheme": "BIO"') == fixed  # auto: the scheme comes from train


def test_a_renamed_task_or_reordered_labels_rebuild_decontaminate_not_pretraining(tmp_path):
    """The texts a task protects do not depend on its name, its place in the list or its labels' order: each
    once rebuilt tokenize and pretraining (hours on a GPU preset). Decontaminate itself rebuilds (its marks and
    report name the tasks); a label list that drops rows still reaches pretraining."""
    for n, prefix in enumerate("tu"):  # each task its own files: their order in the tasks' fingerprint counts too
        rows = "text,label\n" + "".join(f"{prefix} row {i},{'abc'[i % 3]}\n" for i in range(30 + n))
        for split in ("tr", "va", "te"):
            (tmp_path / f"{prefix}{split}.csv").write_text(rows)
    task = '{"name": "%s", "source": "files", "train": "%str.csv", "validation": "%sva.csv", "test": "%ste.csv"%s}'
    t = lambda name, labels="": task % (name, "t", "t", "t", labels)
    u = task % ("u", "u", "u", "u", "")
    both = lambda *tasks: keys(tmp_path, f"tasks.tasks=[{', '.join(tasks)}]")
    before = both(t("t", ', "labels": ["a", "b", "c"]'), u)
    for after in (both(t("renamed", ', "labels": ["a", "b", "c"]'), u), both(t("t", ', "labels": ["c", "a", "b"]'), u),
                  both(u, t("t", ', "labels": ["a", "b", "c"]'))):
        assert {n for n in before if before[n] != after[n]} == {"decontaminate", "finetune", "evaluate"}
    fewer = both(t("t", ', "labels": ["a", "b"]'), u)  # rows labelled c go
    assert DOWNSTREAM_OF_TOKENIZE <= {n for n in before if before[n] != fewer[n]}
    # a tagging task's label order counts: integer tags are ids into it, so it decides which rows are read
    (tmp_path / "n.jsonl").write_text('{"tokens": ["Eve", "x"], "tags": [1, 0]}\n')
    tag = '{"name": "n", "kind": "tagging", "source": "files", "train": "n.jsonl", "text_field": "tokens", ' \
          '"label_field": "tags", "labels": %s}'
    bio, bioes = (keys(tmp_path, f"tasks.tasks=[{tag % labels}]") for labels in (
        '["O", "B-PER", "I-PER", "E-PER", "S-PER"]', '["O", "S-PER", "E-PER", "I-PER", "B-PER"]'))
    assert bio["tokenize"] != bioes["tokenize"]


def test_a_file_touched_or_copied_back_unchanged_keeps_the_keys(tmp_path):
    """Keys followed path, size and mtime: a touch or a git checkout of the same task file rebuilt the corpus
    and pretraining. They follow the content now."""
    rows = "text,label\n" + "".join(f"row {i},{i % 2}\n" for i in range(20))
    (tmp_path / "te.csv").write_text(rows)
    tasks = 'tasks.tasks=[{"name": "t", "source": "files", "train": "te.csv"}]'
    before = keys(tmp_path, tasks)
    rewrite(tmp_path / "te.csv", rows.encode(), 1_000_000_010_000_000_000)  # the same bytes, another mtime
    assert keys(tmp_path, tasks) == before
    rewrite(tmp_path / "te.csv", (rows + "one more,1\n").encode(), 1_000_000_010_000_000_000)
    assert keys(tmp_path, tasks)["decontaminate"] != before["decontaminate"]


def test_continuing_a_model_with_another_reused_tokenizer_fails_at_planning(tmp_path):
    from pipeline.plan import make_plan
    folder = model_folder(tmp_path / "base")
    (folder / "tokenizer").mkdir()
    (folder / "tokenizer" / "tokenizer.model").write_bytes(tokenizer_bytes(0))
    (tmp_path / "other.model").write_bytes(tokenizer_bytes(1))
    plan = lambda tok: make_plan(config.load("tiny", overrides=[f"tokenize.tokenizer_path={tok}",
                                                                 "pretrain.init_from=base"]), tmp_path / "w", tmp_path)
    with pytest.raises(ConfigError, match=r"^tokenize.tokenizer_path: .*other.model is not the tokenizer of "
                                          r"pretrain.init_from's model"):
        plan("other.model")
    assert plan("base/tokenizer")[-1].name == "evaluate"  # the model's own: fine


def test_corpus_keys_follow_content_and_survive_a_moved_project(tmp_path):
    """The corpus key held absolute paths and mtimes: a touch, a fresh clone or a moved project rebuilt
    everything, pretraining included. Digests are kept by stat in data/work/_cache/digests.json."""
    import shutil
    src = 'ingest.sources=[{"name": "notes", "kind": "text", "paths": ["notes/*.txt"]}]'
    for root in (tmp_path / "a", tmp_path / "b"):
        (root / "notes").mkdir(parents=True)
        (root / "notes" / "one.txt").write_text("a first note about sockets\n")
    first = keys(tmp_path / "a", src)
    assert keys(tmp_path / "b", src) == first  # another checkout, the same files
    assert (tmp_path / "a" / "_cache" / "digests.json").exists()
    note = tmp_path / "a" / "notes" / "one.txt"
    os.utime(note, ns=(1_000_000_011_000_000_000, 1_000_000_011_000_000_000))  # touched
    assert keys(tmp_path / "a", src) == first
    st = note.stat()
    note.write_text("a first note about SOCKETS\n")  # same size and mtime: the ctime tells
    os.utime(note, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert keys(tmp_path / "a", src)["ingest"] != first["ingest"]
    shutil.rmtree(tmp_path / "b")
