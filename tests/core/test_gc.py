"""``lmforge gc``: what no live config reaches goes; live outputs, busy partials and foreign folders stay."""
from __future__ import annotations

import json
import os
import time

from pipeline import config, documents, gc
from pipeline.clean import cache
from pipeline.configtypes import to_dict
from pipeline.plan import compute
from pipeline.store import Workspace

from flows import env
from flows.cli import main as cli_main


def _folder(path, size=100, age_s=0.0):
    path.mkdir(parents=True)
    (path / "blob.bin").write_bytes(b"x" * size)
    if age_s:
        t = time.time() - age_s
        for p in (path / "blob.bin", path):
            os.utime(p, (t, t))
    return path


def _store(tmp_path):
    """A store with the tiny config's outputs, one recorded older config, and garbage of every kind."""
    root, work = tmp_path, tmp_path / "data" / "work"
    cfg = config.load("tiny")
    keys = {p.name: p.key for p in compute(cfg, work, root)}
    ws = Workspace(work, "ingest", keys["ingest"])  # a real ingest output, so the attribute cache maps
    out = ws.open(fresh=True)
    (out / "docs").mkdir()
    rows = [{"doc_id": "d:0", "text": "hello world", "source": "s", "meta": "{}"}]
    documents.write_table(documents.docs_table(rows), out / documents.shard_name(0))
    upstream = ws.publish("1", {}, {}, {}, None, 0.0)
    (live_attrs,) = cache.shard_files(work, upstream, cfg.section("clean").normalize_options()).values()
    live_attrs.parent.mkdir(parents=True)
    live_attrs.write_bytes(b"x" * 100)
    stale_attrs = live_attrs.with_name("0" * 32 + ".parquet")  # a shard the documents no longer hold
    stale_attrs.write_bytes(b"x" * 50)
    writing = live_attrs.with_name(f".{stale_attrs.name}.tmp-99999")  # a clean run is writing it: not garbage
    writing.write_bytes(b"x")
    for name in ("clean", "tokenize", "pretrain"):
        _folder(work / name / keys[name])
    resumable = _folder(work / "finetune" / f"{keys['finetune']}.partial", age_s=3600)
    older = config.load("tiny", overrides=["pretrain.max_steps=3"])
    (root / "data" / "runs").mkdir(parents=True)
    (root / "data" / "runs" / "20260101-000000-config.json").write_text(json.dumps({"_preset": "tiny", **to_dict(older)}))
    (root / "data" / "runs" / "20250101-000000-config.json").write_text(json.dumps({"pretrain": {"no_such_key": 1}}))
    older_pretrain = _folder(work / "pretrain" / compute(older, work, root)[5].key)
    garbage = {
        "stale": _folder(work / "pretrain" / "deadbeefdeadbeef", size=1000),
        "abandoned": _folder(work / "tokenize" / "0123456789abcdef.partial", age_s=3600),
        "old": _folder(work / "dedup" / f"{keys['dedup']}.old-12-34"),
        "attrs": _folder(work / "_cache" / "clean_attrs" / "00000000"),
        "stale_attrs": stale_attrs,
        # a live key's partial beside its published output: nothing left to resume (gc once kept it for good)
        "leftover": _folder(work / "ingest" / f"{keys['ingest']}.partial", age_s=3600),
    }
    kept = {"live_attrs": live_attrs, "writing": writing, "resumable": resumable, "older_pretrain": older_pretrain,
            "busy": _folder(work / "evaluate" / "feedfacefeedface.partial"),
            "bench": _folder(work / "_bench" / "model"), "ingest": upstream.path}
    return cfg, garbage, kept


def test_find_lists_exactly_the_garbage_and_collect_removes_it(tmp_path):
    cfg, garbage, kept = _store(tmp_path)
    found = gc.find(cfg, tmp_path)
    assert {p for p, _, _ in found.remove} == set(garbage.values())
    assert found.kept_busy == [kept["busy"]]
    assert found.live_configs == 2 and [p.name for p, _ in found.ignored_configs] == ["20250101-000000-config.json"]
    assert found.bytes == 1000 + 4 * 100 + 50
    assert all(p.exists() for p in garbage.values())  # find touches nothing
    assert gc.collect(found) == 1450
    assert not any(p.exists() for p in garbage.values())
    assert all(p.exists() for p in kept.values())


def test_a_file_hard_linked_from_a_kept_output_frees_nothing(tmp_path):
    """A finetune run reused by another output is a hard link to the same file: removing one of the two
    frees no byte, removing both frees its size once."""
    a, b, c = (_folder(tmp_path / name, size=size) for name, size in (("a", 300), ("b", 20), ("c", 5)))
    os.link(a / "blob.bin", b / "shared.bin")
    os.link(a / "blob.bin", c / "shared.bin")  # a's 300 bytes, three links
    assert gc._freed([b]) == ([20], 300)  # its own blob; the shared bytes stay with a and c (counted once)
    assert gc._freed([a, b]) == ([0, 20], 300)
    assert gc._freed([a, b, c]) == ([0, 20, 5 + 300], 0)  # the shared bytes once, with their last link
    assert gc._freed([c / "blob.bin", a]) == ([5, 0], 300)  # a single file


def test_only_current_also_drops_what_only_recorded_configs_use(tmp_path):
    cfg, garbage, kept = _store(tmp_path)
    found = gc.find(cfg, tmp_path, only_current=True)
    assert {p for p, _, _ in found.remove} == set(garbage.values()) | {kept["older_pretrain"]}


def test_cli_dry_run_removes_nothing(tmp_path, monkeypatch, capsys):
    _, garbage, _ = _store(tmp_path)
    monkeypatch.setenv("LMFORGE_ROOT", str(tmp_path))
    monkeypatch.setattr(env, "apply", lambda root: None)  # keep this process's environment as it is
    blob = next(f for p in garbage.values() if p.is_dir() for f in sorted(p.rglob("*")) if f.is_file())
    (tmp_path / "mlruns" / "artifacts").mkdir(parents=True)
    os.link(blob, tmp_path / "mlruns" / "artifacts" / "logged.bin")  # an MLflow artifact logged as a link
    assert cli_main(["gc", "--preset", "tiny", "--dry-run"]) == 0
    out = capsys.readouterr()
    assert out.out.count("would remove") == len(garbage) and f"{len(garbage)} item(s)" in out.err
    assert f"({blob.stat().st_size / 1e6:,.1f} MB more stay on disk: hard links to them remain in MLflow's " in out.err
    assert "would remove  1 file(s) in " in out.out
    assert all(p.exists() for p in garbage.values())
    assert cli_main(["gc", "--preset", "tiny"]) == 0
    assert not any(p.exists() for p in garbage.values())


def test_a_past_config_whose_corpus_file_is_gone_is_ignored_not_fatal(tmp_path):
    """gc exists for abandoned experiments: a recorded config naming a deleted corpus file once stopped it."""
    cfg, garbage, kept = _store(tmp_path)
    gone = config.load("tiny", overrides=['ingest.sources=[{"name": "books", "kind": "jsonl", '
                                          '"paths": ["data/books.jsonl"]}]'])
    (tmp_path / "data" / "runs" / "20260102-000000-config.json").write_text(json.dumps(to_dict(gone)))
    found = gc.find(cfg, tmp_path)
    assert {p for p, _, _ in found.remove} == set(garbage.values())
    assert found.live_configs == 2
    ignored = dict((p.name, why) for p, why in found.ignored_configs)
    assert "no file matches 'data/books.jsonl'" in ignored["20260102-000000-config.json"]


def test_a_past_config_missing_only_a_late_outside_file_keeps_its_upstream_outputs(tmp_path):
    """A deleted evaluate.extra_texts file makes planning fail for that config; gc must still count its
    upstream stages (here its pretrain checkpoint) as live, as it did before planning checked the files."""
    cfg, garbage, kept = _store(tmp_path)
    (tmp_path / "extra.txt").write_text("some text\n")
    past = config.load("tiny", overrides=["pretrain.max_steps=5", 'evaluate.extra_texts=["extra.txt"]'])
    (tmp_path / "data" / "runs" / "20260103-000000-config.json").write_text(json.dumps(to_dict(past)))
    work = tmp_path / "data" / "work"
    past_pretrain = _folder(work / "pretrain" / {p.name: p.key for p in compute(past, work, tmp_path)}["pretrain"])
    (tmp_path / "extra.txt").unlink()
    found = gc.find(cfg, tmp_path)
    assert {p for p, _, _ in found.remove} == set(garbage.values())
    assert past_pretrain not in {p for p, _, _ in found.remove} and found.live_configs == 3


def test_the_outputs_after_a_missing_task_file_are_all_kept_not_called_unused(tmp_path):
    """The latest run's task file away for a while (another branch checked out): its decontaminate key, and every
    key after it, are unknown, and gc listed that run's pretrained model as "output of a config no run uses"."""
    cfg, garbage, kept = _store(tmp_path)
    rows = "text,label\n" + "".join(f"row {i},{i % 2}\n" for i in range(20))
    for name in ("tr.csv", "te.csv"):
        (tmp_path / name).write_text(rows)
    task = '{"name": "t", "source": "files", "train": "tr.csv", "test": "te.csv"}'
    past = config.load("tiny", overrides=[f"tasks.tasks=[{task}]"])
    (tmp_path / "data" / "runs" / "20260104-000000-config.json").write_text(json.dumps(to_dict(past)))
    work = tmp_path / "data" / "work"
    keys = {p.name: p.key for p in compute(past, work, tmp_path)}
    theirs = {n: _folder(work / n / keys[n]) for n in ("decontaminate", "tokenize", "pretrain", "finetune")}
    (tmp_path / "te.csv").unlink()
    found = gc.find(cfg, tmp_path)
    removed = {p for p, _, _ in found.remove}
    assert not removed & set(theirs.values())
    assert removed == set(garbage.values()) - {garbage["stale"]}  # a published pretrain output: kept (partials go)
    assert found.kept_blocked["decontaminate"].startswith("20260104-000000-config.json: tasks.tasks[t].test: no file")
    assert found.kept_blocked["pretrain"] == "20260104-000000-config.json: needs tokenize"
    # a later run makes it an old config: its file is gone for good, as far as gc can tell, and collection resumes
    (tmp_path / "data" / "runs" / "20260105-000000-config.json").write_text(json.dumps(to_dict(cfg)))
    found = gc.find(cfg, tmp_path)
    assert not found.kept_blocked and set(theirs.values()) <= {p for p, _, _ in found.remove}


def test_a_model_or_tokenizer_the_config_points_into_is_live(tmp_path):
    """Continued pretraining from a model in the store: gc --only-current once removed that model, and the
    config could no longer even be planned."""
    _, garbage, _ = _store(tmp_path)
    stale = garbage["stale"]  # data/work/pretrain/deadbeefdeadbeef
    tokenizer = _folder(tmp_path / "data" / "work" / "tokenize" / "feedbeeffeedbeef.partial", age_s=3600)
    cfg = config.load("tiny", overrides=[f"pretrain.init_from={stale.relative_to(tmp_path)}/model",
                                         f"tokenize.tokenizer_path={tokenizer}/tokenizer"])
    removed = {p for p, _, _ in gc.find(cfg, tmp_path, only_current=True).remove}
    assert stale not in removed and tokenizer not in removed and garbage["attrs"] in removed


def test_a_saved_config_that_is_not_a_mapping_is_ignored_not_fatal(tmp_path):
    runs = tmp_path / "data" / "runs"
    runs.mkdir(parents=True)
    (runs / "20260101-000000-config.json").write_text("[1, 2]")
    configs, bad = gc.recorded_configs(tmp_path)
    assert configs == [] and [(p.name, why.split(":")[0]) for p, why in bad] == [
        ("20260101-000000-config.json", "ConfigError")]
