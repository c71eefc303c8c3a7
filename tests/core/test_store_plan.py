from __future__ import annotations

import json

import pytest

from pipeline import config
from pipeline.plan import PlanError, compute, select
from pipeline.store import Workspace, stage_key, validate


def test_stage_key_is_stable_and_sensitive():
    k = stage_key("clean", "1", {"a": 1, "b": [1, 2]}, {"docs": "abc"})
    assert k == stage_key("clean", "1", {"b": [1, 2], "a": 1}, {"docs": "abc"})  # order-free
    assert len(k) == 16
    assert k != stage_key("clean", "2", {"a": 1, "b": [1, 2]}, {"docs": "abc"})
    assert k != stage_key("clean", "1", {"a": 2, "b": [1, 2]}, {"docs": "abc"})
    assert k != stage_key("clean", "1", {"a": 1, "b": [1, 2]}, {"docs": "abd"})


def test_workspace_publish_and_validate(tmp_path):
    ws = Workspace(tmp_path, "s", "k1")
    out = ws.open(fresh=True)
    (out / "a.txt").write_text("hello")
    (out / "sub").mkdir()
    (out / "sub" / "b.bin").write_bytes(b"\0" * 10)
    m = ws.publish("1", {"x": 1}, {}, {"n": 2}, None, 0.1)
    assert m.path == tmp_path / "s" / "k1" and not ws.partial.exists()
    assert set(m.files) == {"a.txt", "sub/b.bin"} and m.files["sub/b.bin"]["size"] == 10
    assert validate(m.path)[0] is not None
    (m.path / "sub" / "b.bin").write_bytes(b"\0" * 9)
    assert "size of sub/b.bin is 9" in validate(m.path)[1]
    (m.path / "sub" / "b.bin").write_bytes(b"\1" * 10)  # same size, other bytes
    assert validate(m.path)[0] is not None and "digest" in validate(m.path, deep=True)[1]
    (m.path / "sub" / "b.bin").write_bytes(b"\0" * 10)
    (m.path / ".prefect-cache").write_text("{}")  # a dot file: not the stage's output, never listed
    assert validate(m.path, deep=True) == (m, "")
    # a file the manifest does not list: a hand-edited list (a stage then read 62 of 108 documents) or a stray
    data = json.loads((m.path / "manifest.json").read_text())
    del data["files"]["a.txt"]
    (m.path / "manifest.json").write_text(json.dumps(data))
    assert validate(m.path)[0] is not None and validate(m.path, deep=True)[1] == "file a.txt is not in the manifest"
    (m.path / "a.txt").unlink()
    assert validate(m.path, deep=True)[0] is not None
    (m.path / "sub" / "b.bin").unlink()
    assert validate(m.path) == (None, "missing file sub/b.bin")
    (m.path / "manifest.json").unlink()
    assert validate(m.path)[0] is None


@pytest.mark.parametrize("text, why", [
    ("{}", "'stage' missing"), ("[]", "a list, not an object"), ('"x"', "a str, not an object"),
    ("null", "a NoneType, not an object"),
    ('{"stage": "s", "key": "k1", "version": "1", "inputs": {}, "files": ["a.txt"]}', "'files' missing or not a dict"),
    ('{"stage": "s", "key": "k1", "version": "1", "inputs": {}, "files": {"a.txt": {"digest": "d"}}}',
     "file 'a.txt' has no size and digest"),
])
def test_a_manifest_of_another_shape_is_no_output(tmp_path, text, why):
    """JSON that is no manifest once crashed every command (status, run --force, gc) with a TypeError."""
    folder = tmp_path / "s" / "k1"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(text)
    m, reason = validate(folder)
    assert m is None and "is not a manifest" in reason and why in reason
    cfg = config.load("tiny")
    planned = compute(cfg, tmp_path / "work", tmp_path)
    bad = tmp_path / "work" / "evaluate" / planned[-1].key
    bad.mkdir(parents=True)
    (bad / "manifest.json").write_text(text)
    assert "is not a manifest" in compute(cfg, tmp_path / "work", tmp_path)[-1].reason


def test_partial_folder_survives_for_resume(tmp_path):
    ws = Workspace(tmp_path, "s", "k")
    (ws.open(fresh=False) / "part-0").write_text("done")
    assert (Workspace(tmp_path, "s", "k").open(fresh=False) / "part-0").read_text() == "done"
    assert not (Workspace(tmp_path, "s", "k").open(fresh=True) / "part-0").exists()


def _publish(plan_stage):
    ws = Workspace(plan_stage.path.parent.parent, plan_stage.name, plan_stage.key)
    (ws.open(fresh=True) / "x").write_text(plan_stage.name)
    return ws.publish(plan_stage.version, plan_stage.config, plan_stage.inputs, {}, None, 0.0)


def test_keys_propagate_downstream(tmp_path):
    a = compute(config.load("tiny"), tmp_path, tmp_path)
    b = compute(config.load("tiny", overrides=["ingest.docs_per_shard=7"]), tmp_path, tmp_path)
    assert a[0].key != b[0].key
    assert all(x.key != y.key for x, y in zip(a, b))  # every downstream key changes too
    c = compute(config.load("tiny"), tmp_path, tmp_path)
    assert [x.key for x in a] == [x.key for x in c]


def test_selection_and_missing_upstream(tmp_path):
    cfg = config.load("tiny")
    plan = compute(cfg, tmp_path, tmp_path)
    assert [p.action for p in plan] == ["run"] * len(plan)
    _publish(plan[0])
    plan = select(compute(cfg, tmp_path, tmp_path))
    assert plan[0].action == "cached"
    plan = select(compute(cfg, tmp_path, tmp_path), force=True)
    assert plan[0].action == "run" and plan[0].reason == "forced"
    plan = select(compute(cfg, tmp_path, tmp_path), stage=plan[0].name)
    assert plan[0].reason == "selected to rerun"
    with pytest.raises(PlanError, match="--stage: got 'nope', allowed: ingest"):
        select(compute(cfg, tmp_path, tmp_path), stage="nope")


def test_contradictory_selections_and_the_missing_upstream_message(tmp_path):
    cfg = config.load("tiny")
    with pytest.raises(PlanError, match="--until ingest comes before --from evaluate: nothing to run"):
        select(compute(cfg, tmp_path, tmp_path), from_="evaluate", until="ingest")
    with pytest.raises(PlanError, match="--stage and --until cannot be combined"):
        select(compute(cfg, tmp_path, tmp_path), stage="dedup", until="clean")
    # the upstream's own reason (not "not selected") and a retry that keeps the user's options
    with pytest.raises(PlanError, match=r"needs clean/\w+, which is missing or incomplete \(not built yet\); run it "
                                        r"first: the same lmforge run command \(same --preset, --config and --set\) "
                                        "with --until clean"):
        select(compute(cfg, tmp_path, tmp_path), stage="dedup")


def test_editing_task_or_extra_text_files_changes_the_keys_of_their_readers(tmp_path):
    """Files named in the config (task data, evaluate.extra_texts) are part of the keys of the stages
    that read them, so an edited file is never served from a stale cache."""
    data = tmp_path / "task.tsv"
    data.write_text("label\ttext\npos\tgood\nneg\tbad\n")
    extra = tmp_path / "extra.txt"
    extra.write_text("some text\n")
    task = {"name": "t", "kind": "classification", "source": "files", "train": "task.tsv"}
    overrides = [f"tasks.tasks=[{json.dumps(task)}]", 'evaluate.extra_texts=["extra.txt"]']
    keys = lambda: {p.name: p.key for p in compute(config.load("tiny", overrides=overrides), tmp_path, tmp_path)}
    before = keys()
    assert keys() == before
    data.write_text("label\ttext\npos\tgood\nneg\tbad\nneg\tworse\n")
    after_task = keys()
    changed = {name for name in before if before[name] != after_task[name]}
    # decontaminate reads the tasks, and everything downstream of it follows
    assert changed == {"decontaminate", "tokenize", "pretrain", "finetune", "evaluate"}
    extra.write_text("other text, longer\n")
    after_extra = keys()
    assert {name for name in before if after_task[name] != after_extra[name]} == {"evaluate"}


def test_a_published_folder_is_read_through_its_manifest(tmp_path):
    """A shard copied into a published output once entered the next stage (154 documents instead of 108)."""
    import shutil

    from pipeline import documents
    ws = Workspace(tmp_path, "dedup", "k1")
    out = ws.open(fresh=True)
    row = {"doc_id": "a", "text": "x", "source": "s", "meta": "{}"}
    (out / "docs").mkdir()
    documents.write_table(documents.docs_table([row]), out / documents.shard_name(0))
    assert documents.doc_shards(out) == [out / documents.shard_name(0)]  # being written: what is on disk
    m = ws.publish("1", {}, {}, {}, None, 0.1)
    shutil.copy(m.path / documents.shard_name(0), m.path / documents.shard_name(1))
    assert documents.doc_shards(m.path) == [m.path / documents.shard_name(0)] and documents.count_rows(m.path) == 1


def test_settings_that_cannot_change_an_output_are_not_in_its_key(tmp_path):
    """LoRA's rank when no run uses LoRA, or a tokenizer's training options when it is reused, once rebuilt the
    finetune stage (and with the tokenizer, pretraining too)."""
    from finetune.tiny_pretrained import tokenizer_bytes

    def keys(*sets: str) -> dict[str, str]:
        return {p.name: p.key for p in compute(config.load("tiny", overrides=list(sets)), tmp_path, tmp_path)}

    full = keys("finetune.methods=full")
    assert keys("finetune.methods=full", "finetune.lora_r=4", "finetune.adapter_bottleneck=7",
                "finetune.then=lora", "finetune.peft_lr=1e-2") == full
    assert keys("finetune.methods=full,lora", "finetune.lora_r=4")["finetune"] != keys(
        "finetune.methods=full,lora")["finetune"]
    two = ["finetune.methods=two_stage", "finetune.epochs=2", "finetune.then=adapter"]
    assert keys(*two, "finetune.adapter_bottleneck=7")["finetune"] != keys(*two)["finetune"]
    assert keys(*two, "finetune.lora_r=4") == keys(*two)
    assert keys("finetune.log_checkpoints=false") == keys()  # what MLflow holds, not what the stage writes
    (tmp_path / "tok.model").write_bytes(tokenizer_bytes())
    reuse = "tokenize.tokenizer_path=tok.model"
    assert keys(reuse, "tokenize.vocab_size=5000", "tokenize.model_type=bpe") == keys(reuse)
    assert keys(reuse, "tokenize.val_fraction=0.2")["tokenize"] != keys(reuse)["tokenize"]
    assert keys("tokenize.vocab_size=1200")["tokenize"] != keys()["tokenize"]  # trained: every option counts
    # what another section makes moot (a tester's findings): a decoder is pretrained and scored with no masking;
    # fine-tuning reads at most the trunk's block size
    assert keys("pretrain.mask_rate=0.3", "evaluate.mask_rate=0.3", "evaluate.mean_span=5") == keys()
    enc = "pretrain.model.arch=encoder"
    assert keys(enc, "evaluate.mean_span=5") == keys(enc)
    assert keys(enc, "evaluate.mask_rate=0.3")["evaluate"] != keys(enc)["evaluate"]
    assert keys(enc, "pretrain.mask_rate=0.3")["pretrain"] != keys(enc)["pretrain"]
    block = config.load("tiny").pretrain.model.block_size
    assert keys(f"finetune.max_len={block + 100}") == keys(f"finetune.max_len={block}")
    assert keys(f"finetune.max_len={block - 1}")["finetune"] != keys(f"finetune.max_len={block}")["finetune"]


def test_a_report_only_setting_rebuilds_its_stage_not_the_downstream(tmp_path):
    """clean.plot or a sample size once rebuilt everything after the stage (pretraining included)."""
    def keys(*sets: str) -> dict[str, str]:
        return {p.name: p.key for p in compute(config.load("tiny", overrides=list(sets)), tmp_path, tmp_path)}

    base = keys()
    for setting, stage in (("clean.plot=true", "clean"), ("dedup.sample_clusters=3", "dedup"),
                           ("decontaminate.sample_docs=2", "decontaminate"),
                           ("ingest.samples_per_reason=1", "ingest")):
        changed = keys(setting)
        assert {n for n in base if base[n] != changed[n]} == {stage}, setting
    assert keys("pretrain.checkpoint_every=7") == base  # resume is exact: no output changes
    # retraining for another log_every gives other weights wherever training is not bit-reproducible (CUDA):
    # the downstream stages must not keep the old model's results
    assert {n for n, k in keys("pretrain.log_every=1").items() if k != base[n]} == {"pretrain", "finetune", "evaluate"}
    assert keys("clean.min_words=7")["dedup"] != base["dedup"]  # a setting of the data still counts downstream
