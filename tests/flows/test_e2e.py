"""The whole flow on the tiny preset, in-process, with a temporary Prefect server and MLflow store."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def project(tmp_path_factory, prefect_server):
    root = tmp_path_factory.mktemp("project")
    return root


def lmforge(root: Path, monkeypatch, *args: str) -> int:
    from flows.cli import main
    monkeypatch.chdir(root)
    return main(list(args))


@pytest.fixture
def executed(monkeypatch):
    """Names of the stages whose function actually ran."""
    from pipeline import runner
    calls: list[str] = []
    real = runner.execute

    def spy(ps, *a, **k):
        calls.append(ps.name)
        return real(ps, *a, **k)
    monkeypatch.setattr(runner, "execute", spy)
    return calls


def status(root: Path, monkeypatch, capsys, *extra: str) -> list[dict]:
    capsys.readouterr()
    assert lmforge(root, monkeypatch, "status", "--json", "--preset", "tiny", *extra) == 0
    return json.loads(capsys.readouterr().out)


def mlflow_runs(root: Path):
    from mlflow.tracking import MlflowClient
    client = MlflowClient(f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("lmforge")
    return client, client.search_runs([exp.experiment_id], max_results=1000)


def test_full_run_then_cached(project, monkeypatch, capsys, executed):
    from pipeline import stages
    names = stages.names()
    capsys.readouterr()
    assert lmforge(project, monkeypatch, "run", "--preset", "tiny") == 0
    assert executed == names
    out, err = capsys.readouterr()
    assert "# lmforge evaluation report" in out and "bits per byte" in out  # the report ends the run
    assert 'lmforge predict --task stdlib_area "some text" (tasks: stdlib_area, stdlib_names)' in err  # what next
    rows = status(project, monkeypatch, capsys)
    assert [r["stage"] for r in rows] == names and all(r["cached"] for r in rows)
    mtimes = {r["stage"]: (Path(r["path"]) / "manifest.json").stat().st_mtime_ns for r in rows}
    executed.clear()
    assert lmforge(project, monkeypatch, "run", "--preset", "tiny") == 0
    assert executed == []  # nothing ran the second time
    assert {r["stage"]: (Path(r["path"]) / "manifest.json").stat().st_mtime_ns
            for r in status(project, monkeypatch, capsys)} == mtimes

    client, runs = mlflow_runs(project)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 2 and len(children) == 2 * len(names)
    built = [r for r in children if r.data.tags["cached"] == "false"]
    cached = [r for r in children if r.data.tags["cached"] == "true"]
    assert sorted(r.data.tags["stage"] for r in built) == sorted(names)
    by_key = {r.data.tags["stage.key"]: r.info.run_id for r in built}
    assert all(r.data.tags["built_by"] == by_key[r.data.tags["stage.key"]] for r in cached)
    ingest_run = next(r for r in built if r.data.tags["stage"] == "ingest")
    assert ingest_run.data.metrics["docs"] == 120 and "stage_seconds" in ingest_run.data.metrics
    assert ingest_run.data.params["docs_per_shard"] == "50"
    assert rows[0]["run_id"] == ingest_run.info.run_id
    # the pretrained model is registered, with its lineage
    pretrain_run = next(r for r in built if r.data.tags["stage"] == "pretrain")
    [version] = client.search_model_versions("name = 'lmforge-pretrained'")
    assert version.run_id == pretrain_run.info.run_id
    tokenize_key = next(r["key"] for r in rows if r["stage"] == "tokenize")
    assert version.tags["input.tokens"] == tokenize_key and version.tags["tokenizer_key"] == tokenize_key
    # lineage names the folders read, not the data keys (decontaminate's differs: it has report-only settings)
    key = {r["stage"]: r["key"] for r in rows}
    assert version.tags["corpus_key"] == key["decontaminate"]
    finetune = json.loads((Path(rows[names.index("finetune")]["path"]) / "manifest.json").read_text())
    assert finetune["sources"] == {"model": key["pretrain"]}
    assert pretrain_run.data.tags["input.tokens"] == key["tokenize"]
    artifacts = {a.path for a in client.list_artifacts(pretrain_run.info.run_id)}
    assert {"model", "reports", "manifest.json"} <= artifacts
    # a clear view in MLflow: the parent says how it was run, with the report one click away; cached stages
    # are named so and point at their builder; the test figures are metrics; inputs name their runs
    assert [p.info.run_name for p in parents] == ["tiny", "tiny"]
    assert all(p.data.tags["lmforge.command"].startswith("lmforge run --preset tiny") for p in parents)
    assert all(p.data.params["overrides"] == "[]" and "report.md" in {a.path for a in client.list_artifacts(
        p.info.run_id)} for p in parents)
    assert "8 stage(s): 0 built, 8 cached" in next(p for p in parents if p.data.metrics["stages_run"] == 0
                                                   ).data.tags["mlflow.note.content"]
    assert all(r.info.run_name == r.data.tags["stage"] + " (cached)" and r.data.tags["built_by"] in
               r.data.tags["mlflow.note.content"] for r in cached)
    evaluate_run = next(r for r in built if r.data.tags["stage"] == "evaluate")
    assert 0 <= evaluate_run.data.metrics["test.stdlib_area.full.pretrained.accuracy"] <= 1
    assert "test.stdlib_names.full.pretrained.f1" in evaluate_run.data.metrics
    assert evaluate_run.data.tags["input.model.run"] == pretrain_run.info.run_id
    steps = [m.step for m in client.get_metric_history(pretrain_run.info.run_id, "val_loss")]
    assert steps == sorted(steps) and steps[0] > 0  # the closing figure sits at the last step, not at 0
    assert "loss_curve.png" in {a.path.split("/")[-1] for a in client.list_artifacts(pretrain_run.info.run_id, "reports")}


def test_a_report_only_change_rebuilds_its_stage_and_cached_stages_keep_their_lineage(project, monkeypatch,
                                                                                   capsys, executed):
    """dedup.sample_clusters changes dedup's reports only: dedup runs again, the rest stays cached, and a cached
    stage's MLflow input tags still name the folder its output was built from."""
    assert lmforge(project, monkeypatch, "run", "--preset", "tiny") == 0
    executed.clear()
    assert lmforge(project, monkeypatch, "run", "--preset", "tiny", "--set", "dedup.sample_clusters=2") == 0
    assert executed == ["dedup"]
    rows = {r["stage"]: r for r in status(project, monkeypatch, capsys, "--set", "dedup.sample_clusters=2")}
    built_from = json.loads((Path(rows["decontaminate"]["path"]) / "manifest.json").read_text())["sources"]["docs"]
    assert built_from != rows["dedup"]["key"]  # the folder it read is the first dedup output
    client, runs = mlflow_runs(project)
    latest = max((r for r in runs if r.data.tags.get("stage") == "decontaminate"), key=lambda r: r.info.start_time)
    assert latest.data.tags["cached"] == "true" and latest.data.tags["input.docs"] == built_from
    # and the run that built that folder, as an executed stage's tags name it (cached runs once lacked it)
    first_dedup = next(r for r in runs if r.data.tags.get("stage") == "dedup" and r.data.tags["cached"] == "false"
                       and r.data.tags["stage.key"] == built_from)
    assert latest.data.tags["input.docs.run"] == first_dedup.info.run_id


def test_rerun_selections(project, monkeypatch, capsys, executed):
    from pipeline import stages
    names = stages.names()
    assert lmforge(project, monkeypatch, "run", "--preset", "tiny", "--stage", names[0]) == 0
    assert executed == [names[0]]
    executed.clear()
    assert lmforge(project, monkeypatch, "run", "--preset", "tiny", "--from", names[-1]) == 0
    assert executed == [names[-1]]
    executed.clear()
    assert lmforge(project, monkeypatch, "run", "--preset", "tiny", "--force", "--until", names[0]) == 0
    assert executed == [names[0]]
    executed.clear()
    # a changed value changes that stage's key and every key downstream, and nothing upstream
    before = {r["stage"]: r["key"] for r in status(project, monkeypatch, capsys)}
    change = ("--set", "tokenize.vocab_size=900")
    assert lmforge(project, monkeypatch, "run", "--preset", "tiny", "--from", "tokenize", *change) == 0
    later = names[names.index("tokenize"):]
    assert executed == later
    after = {r["stage"]: r["key"] for r in status(project, monkeypatch, capsys, *change)}
    assert [n for n in names if before[n] != after[n]] == later
    executed.clear()
    assert lmforge(project, monkeypatch, "run", "--preset", "tiny", *change) == 0
    assert executed == []


def test_deleted_or_damaged_output_is_rebuilt(project, monkeypatch, capsys, executed):
    from pipeline import stages
    names = stages.names()
    assert lmforge(project, monkeypatch, "run", "--preset", "tiny") == 0
    rows = status(project, monkeypatch, capsys)
    shutil.rmtree(rows[0]["path"])
    executed.clear()
    assert lmforge(project, monkeypatch, "run", "--preset", "tiny") == 0
    assert executed == [names[0]]  # deterministic output: the same key, downstream stays cached
    shard = sorted((Path(rows[0]["path"]) / "docs").glob("*.parquet"))[0]
    shard.write_bytes(shard.read_bytes()[:-10])
    executed.clear()
    capsys.readouterr()
    assert lmforge(project, monkeypatch, "run", "--preset", "tiny") == 0
    assert executed == [names[0]]
    assert f"running: damaged output (size of docs/{shard.name} is" in capsys.readouterr().err  # the log says why
    assert all(r["cached"] for r in status(project, monkeypatch, capsys, "--verify"))
    # same-size damage to a cached input of a stage that runs: its digest is checked first, and it is rebuilt
    # (it once fed the stage: a cryptic pyarrow error, or silently other data)
    decont = next(r for r in status(project, monkeypatch, capsys) if r["stage"] == "decontaminate")
    shard = sorted((Path(decont["path"]) / "docs").glob("*.parquet"))[0]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    capsys.readouterr()
    assert lmforge(project, monkeypatch, "status", "--verify", "--preset", "tiny") == 1  # a script can tell
    said = capsys.readouterr()
    assert "1 output(s) failed verification: decontaminate" in said.err
    line = next(x for x in said.out.splitlines() if x.startswith("decontaminate"))
    assert " damaged (digest of docs/" in line  # there, but not what it lists: not "missing"
    assert lmforge(project, monkeypatch, "status", "--preset", "tiny") == 0  # sizes only: the damage is unseen
    assert lmforge(project, monkeypatch, "run", "--preset", "tiny", "--stage", "tokenize") == 2
    assert "whose output is damaged (digest of docs/" in capsys.readouterr().err
    shutil.rmtree(next(r["path"] for r in status(project, monkeypatch, capsys) if r["stage"] == "tokenize"))
    executed.clear()
    assert lmforge(project, monkeypatch, "run", "--preset", "tiny", "--until", "tokenize") == 0
    assert executed == ["decontaminate", "tokenize"]
    assert "running: damaged output (digest of docs/" in capsys.readouterr().err


def test_generate_from_the_pipeline_model(project, monkeypatch, capsys):
    capsys.readouterr()
    assert lmforge(project, monkeypatch, "generate", "--prompt", "The ", "--max-tokens", "8") == 0
    out, err = capsys.readouterr()
    assert out.startswith("The ") and len(out.strip()) > len("The")
    assert re.search(r"lmforge: the latest pretrained causal LM: .*/data/work/pretrain/\w+/model \(--model", err)
    assert lmforge(project, monkeypatch, "fill-mask", "The [MASK] module") == 2
    assert "no pretrained masked LM (encoder)" in capsys.readouterr().err
    # --model: a model folder or a pretrain output holding one; anything else says what it expected
    pretrain_out = next((project / "data" / "work" / "pretrain").glob("*/model")).parent
    assert lmforge(project, monkeypatch, "generate", "--model", str(pretrain_out), "--max-tokens", "2") == 0
    assert lmforge(project, monkeypatch, "generate", "--model", str(project / "nope")) == 2
    assert "--model: no model in" in capsys.readouterr().err
    assert (pretrain_out / "checkpoint" / "model_config.json").is_file()  # weights without a tokenizer: says where
    assert lmforge(project, monkeypatch, "generate", "--model", str(pretrain_out / "checkpoint")) == 2
    assert (f"holds weights but no tokenizer (a training checkpoint?); the published model, with its tokenizer, "
            f"is {pretrain_out / 'model'}") in capsys.readouterr().err
    # predict: the best pretrained run of the newest fine-tuning output holding the task
    assert lmforge(project, monkeypatch, "predict", "--task", "stdlib_names", "Call os.path.join on the parts.") == 0
    out, err = capsys.readouterr()
    assert out.count("\n") == 1 and "Call" in out
    assert re.search(r"task 'stdlib_names', run \w+-pretrained-s\d .*/data/work/finetune/\w+/runs/stdlib_names/", err)


def test_missing_upstream_is_a_clear_error(tmp_path, monkeypatch, capsys):
    from pipeline import stages
    names = stages.names()
    if len(names) < 2:
        pytest.skip("needs at least two stages")
    assert lmforge(tmp_path, monkeypatch, "run", "--preset", "tiny", "--stage", names[1]) == 2
    err = capsys.readouterr().err
    assert f"needs {names[0]}/" in err and "(not built yet)" in err and f"with --until {names[0]}" in err


def test_killed_stage_resumes_byte_identical(tmp_path, monkeypatch, prefect_server, capsys):
    from flows import pipeline as flow
    from pipeline import config
    from pipeline.configtypes import to_dict
    from pipeline.plan import make_plan
    from pipeline.stage import InjectedFailure
    cfg = config.load("tiny", overrides=["run.tracking=false", "ingest.docs_per_shard=20"])

    def run_ingest(root: Path, fail: int | None):
        work = root / "data" / "work"
        plan = make_plan(cfg, work, root, until="ingest")
        return flow.run(cfg, plan, root, work, to_dict(cfg), fail_after_shards={"ingest": fail} if fail else None)

    with pytest.raises(InjectedFailure):
        run_ingest(tmp_path / "a", 2)
    partial = list((tmp_path / "a" / "data" / "work" / "ingest").glob("*.partial"))
    assert len(partial) == 1 and len(list((partial[0] / "docs").glob("*.parquet"))) == 2
    kept = sorted((partial[0] / "docs").glob("*.parquet"))[1]
    kept.write_bytes(kept.read_bytes()[:-100])  # damaged after it was written: redone, not published
    capsys.readouterr()
    [resumed] = run_ingest(tmp_path / "a", None)
    assert "resuming: 2 file(s) kept from an interrupted run" in capsys.readouterr().err  # (one of them damaged)
    [clean] = run_ingest(tmp_path / "b", None)
    a = json.loads((Path(resumed["path"]) / "manifest.json").read_text())["files"]
    b = json.loads((Path(clean["path"]) / "manifest.json").read_text())["files"]
    assert a == b and len(a) > 3


def test_an_encoder_decoder_through_the_flow_and_finetune_runs_reused(project, monkeypatch, capsys, executed):
    """T5-style: pretrained by span corruption, fine-tuned on its encoder, scored and filling blanks; a second
    seed then trains only that seed's run (the first is reused from the earlier finetune output)."""
    # (finetune.threads fixed: by default a run's threads are the cores shared out among the runs, and another
    # thread count is another float rounding, so another run key)
    t5 = ("--set", "pretrain.model.arch=encoder_decoder", "--set", "pretrain.model.n_dec_layer=1",
          "--set", "finetune.threads=1")
    capsys.readouterr()
    assert lmforge(project, monkeypatch, "run", "--preset", "tiny", *t5) == 0
    assert executed == ["pretrain", "finetune", "evaluate"]  # the corpus and tokenizer are the decoder's
    out = capsys.readouterr().out
    assert "encoder-decoder, span corruption" in out and "Seq2SeqLM" in out
    assert lmforge(project, monkeypatch, "fill-mask", "The [MASK] module") == 0  # the newest: the encoder-decoder
    assert capsys.readouterr().out.startswith("mask 1: ")
    assert lmforge(project, monkeypatch, "fill-mask", "--top-k", "3", "The [MASK] module") == 0  # said, not ignored
    assert "--top-k 3 left aside" in capsys.readouterr().err
    executed.clear()
    assert lmforge(project, monkeypatch, "run", "--preset", "tiny", *t5, "--set", "finetune.seeds=[0,1]") == 0
    assert executed == ["finetune", "evaluate"]
    captured = capsys.readouterr()
    assert "runs_reused=2" in captured.out + captured.err  # seed 0 of both tasks
    assert "2 of 4 runs reused from" in captured.err
