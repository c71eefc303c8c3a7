"""Fine-tuning an encoder-decoder (T5-style) model: the task head sits on its encoder."""
from __future__ import annotations

import json

import torch

from finetune.test_stage import WORDS, context, write_ner
from finetune.tiny_pretrained import make_pretrained
from model import load_model
from pipeline.configtypes import build
from pipeline.finetune import FinetuneConfig, modeling, run
from pipeline.finetune.results import list_runs, test_metrics
from pipeline.tasks import TasksConfig


def test_the_head_sits_on_the_encoder_with_its_pretrained_weights(tmp_path):
    root = make_pretrained(tmp_path / "t5", arch="encoder_decoder")
    lm, mcfg = load_model(root / "model")
    clf = modeling.build("classification", 2, mcfg, root / "model", "auto", 0.0, seed=0)
    assert clf.pooling == "mean" and not clf.trunk.causal and len(clf.trunk.blocks) == mcfg.n_layer
    theirs = lm.encoder.state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in clf.trunk.state_dict().items())
    tasks = build(TasksConfig, {"tasks": [{"name": "ner", "kind": "tagging", "source": "files", "train": "ner.conll"},
                                          {"name": "c", "source": "files", "train": "c.csv"}]})
    write_ner(tmp_path)
    (tmp_path / "c.csv").write_text("text,label\n" + "".join(f"{WORDS[i % 6]} x,{i % 2}\n" for i in range(40)))
    cfg = FinetuneConfig(methods=["full", "lora"], epochs=2, threads=1, max_len=32, lora_r=4)
    stats = run(cfg, context(tmp_path, root, tasks))
    assert stats["runs"] == 6
    for r in list_runs(tmp_path / "out"):
        meta = json.loads((tmp_path / "out" / "runs" / r["task"] / f"{r['method']}-{r['init']}-s0" / "model" /
                           "meta.json").read_text())
        assert meta["arch"] == "encoder_decoder"
        m = test_metrics(r["run_dir"], tasks)  # the saved task model reloads (an encoder trunk) and scores
        assert m["n_test"] > 0 and m["task"] == r["task"]
        model, _, _ = modeling.load(tmp_path / "out" / "runs" / r["task"] / f"{r['method']}-{r['init']}-s0" / "model")
        assert not model.trunk.causal
