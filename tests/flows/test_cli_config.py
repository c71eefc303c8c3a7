"""Which config ``status`` and ``gc`` look at when the command line names none."""
from __future__ import annotations

import json

from flows import env
from flows.cli import main
from pipeline import config
from pipeline.configtypes import to_dict
from pipeline.plan import compute


def test_status_without_a_config_shows_the_latest_runs(tmp_path, monkeypatch, capsys):
    """After `lmforge run --preset tiny`, a plain `lmforge status` showed the default preset's stages, all
    "missing"; it now takes the latest run's saved config, and says so."""
    monkeypatch.setenv("LMFORGE_ROOT", str(tmp_path))
    monkeypatch.setattr(env, "apply", lambda root: None)
    runs = tmp_path / "data" / "runs"

    def keys(args):
        assert main(["status", "--json", *args]) == 0
        out = capsys.readouterr()
        return [r["key"] for r in json.loads(out.out)], out.err

    default, err = keys([])  # nothing recorded: the default preset
    assert default == [p.key for p in compute(config.load("default"), tmp_path / "data" / "work", tmp_path)]
    runs.mkdir(parents=True)
    tiny = config.load("tiny", overrides=["pretrain.max_steps=7"])
    (runs / "20260101-000000-config.json").write_text(json.dumps({"_preset": "default", **to_dict(
        config.load("default"))}))
    (runs / "20260102-000000-config.json").write_text(json.dumps({"_preset": "tiny", **to_dict(tiny)}))
    latest, err = keys([])
    assert latest == [p.key for p in compute(tiny, tmp_path / "data" / "work", tmp_path)]
    assert "the config of the latest run (data/runs/20260102-000000-config.json, preset tiny)" in err
    assert keys(["--preset", "default"])[0] == default  # a named config wins
    (runs / "20260103-000000-config.json").write_text('{"pretrain": {"no_such_key": 1}}')
    fallback, err = keys([])  # an older lmforge's config that no longer loads: the default preset, said
    assert fallback == default and "no longer loads" in err


def test_sampling_options_refuse_negative_values(capsys):
    """`generate --top-k -3` crashed in torch.topk with a traceback; 0 keeps its documented meaning."""
    import pytest
    from flows.cli import parser
    for opt, bad in (("--top-k", "-3"), ("--temperature", "-1"), ("--temperature", "nan"), ("--max-tokens", "0")):
        with pytest.raises(SystemExit) as e:
            parser().parse_args(["generate", opt, bad])
        assert e.value.code == 2 and "allowed: " in capsys.readouterr().err
    for port in ("0", "-1", "99999"):  # bind() raised a traceback; 0 served on a port the command did not name
        with pytest.raises(SystemExit):
            parser().parse_args(["ui", "--port", port])
        assert "allowed: 1 to 65535" in capsys.readouterr().err
    args = parser().parse_args(["generate", "--top-k", "0", "--temperature", "0"])
    assert (args.top_k, args.temperature) == (0, 0.0)


def test_status_and_dry_run_name_what_an_interrupted_run_left(tmp_path, monkeypatch, capsys):
    """A killed run's partial folder read as "missing (not built yet)": nothing said the next run resumes it."""
    monkeypatch.setenv("LMFORGE_ROOT", str(tmp_path))
    monkeypatch.setattr(env, "apply", lambda root: None)
    work = tmp_path / "data" / "work"
    plan = compute(config.load("tiny"), work, tmp_path)
    partial = plan[0].path.with_name(plan[0].key + ".partial")
    (partial / "docs").mkdir(parents=True)
    for name in ("docs/part-00000.parquet", "docs/part-00001.parquet", ".x.tmp-1"):
        (partial / name).write_bytes(b"x")
    said = "not built yet; 2 file(s) of an interrupted run kept, resumed by the next run"
    assert main(["status", "--preset", "tiny"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert said in out[0] and "interrupted" not in "".join(out[1:])
    assert main(["run", "--preset", "tiny", "--dry-run"]) == 0
    assert said in capsys.readouterr().out.splitlines()[0]
    assert main(["run", "--preset", "tiny", "--dry-run", "--force"]) == 0  # a forced run starts over
    assert "interrupted" not in capsys.readouterr().out


def test_a_live_run_notes_its_planned_keys_in_its_lock(tmp_path, monkeypatch, capsys):
    """gc keeps what a live run planned, even when a file it read has changed since: the run notes its keys."""
    from flows import pipeline as flow
    from pipeline import locks
    monkeypatch.setenv("LMFORGE_ROOT", str(tmp_path))
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")  # no server: the flow does not run here
    monkeypatch.setattr(env, "apply", lambda root: None)
    seen = []

    def flow_run(cfg, plan, root, work, *a, **k):
        (lock,) = (root / "data" / "runs").glob("*-config.json.lock")
        seen.append((locks.planned_keys(lock), {p.name: p.key for p in plan}, locks.held_elsewhere(lock)))
        return []
    monkeypatch.setattr(flow, "run", flow_run)
    assert main(["run", "--preset", "tiny"]) == 0
    (noted, planned, held), = seen
    assert noted == planned and len(noted) == 8 and held  # (another descriptor's flock: held, as gc sees it)
    assert not list((tmp_path / "data" / "runs").glob("*.lock"))  # gone with the run


def test_status_lists_every_stage_when_a_task_file_of_the_config_is_gone(tmp_path, monkeypatch, capsys):
    """It stopped at the missing file's error and listed nothing, not even the stages that do not read it."""
    monkeypatch.setenv("LMFORGE_ROOT", str(tmp_path))
    monkeypatch.setattr(env, "apply", lambda root: None)
    rows = "text,label\n" + "".join(f"row {i},{i % 2}\n" for i in range(20))
    for name in ("tr.csv", "te.csv"):
        (tmp_path / name).write_text(rows)
    task = {"name": "t", "source": "files", "train": "tr.csv", "test": "te.csv"}
    cfg = to_dict(config.load("tiny", overrides=[f"tasks.tasks=[{json.dumps(task)}]"]))
    (tmp_path / "data" / "runs").mkdir(parents=True)
    (tmp_path / "data" / "runs" / "20260102-000000-config.json").write_text(json.dumps({"_preset": "tiny", **cfg}))
    (tmp_path / "te.csv").unlink()
    assert main(["status"]) == 0
    out, err = capsys.readouterr()
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert list(lines) == ["ingest", "clean", "dedup", "decontaminate", "tokenize", "pretrain", "finetune", "evaluate"]
    assert "cannot run: tasks.tasks[t].test: no file 'te.csv'" in lines["decontaminate"]
    assert "missing (not built yet)" in lines["ingest"]
    for after, up in (("tokenize", "decontaminate"), ("pretrain", "tokenize")):  # keys hanging on the missing file:
        assert lines[after].split()[1] == "-"  # unknown, not "not built yet"
        assert f"missing (cannot run: needs {up}, which cannot)" in lines[after]
    assert "cannot run: tasks.tasks[t].test: no file" in lines["finetune"]  # (it reads the tasks itself)
    assert lines["finetune"].split()[1] == lines["evaluate"].split()[1] == "-"  # after a blocked stage: unknown
    assert "lmforge status: decontaminate: tasks.tasks[t].test: no file 'te.csv'" in err
