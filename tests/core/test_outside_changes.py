"""A file outside the store that a stage's key holds, changed after the run planned it: the stage publishes
nothing. A tester edited a task file while pretraining ran; fine-tuning then read the new file and its output was
cached under the old file's key (a rerun with the old file took it from cache)."""
from __future__ import annotations

import pytest

from pipeline import config
from pipeline.plan import make_plan
from pipeline.runner import execute
from pipeline.stage import InputChanged
from pipeline.store import validate

SOURCE = 'ingest.sources=[{"name": "c", "kind": "text", "paths": ["corpus.txt"]}]'


def plan_for(tmp_path):
    (tmp_path / "corpus.txt").write_text("A first paragraph of text.\n\nA second one, here.\n")
    cfg = config.load("tiny", overrides=[SOURCE])
    work = tmp_path / "data" / "work"
    return cfg, work, make_plan(cfg, work, tmp_path, stage="ingest")


def test_a_file_changed_before_its_stage_starts(tmp_path):
    cfg, work, plan = plan_for(tmp_path)
    (tmp_path / "corpus.txt").write_text("Another text altogether.\n")  # (while an earlier stage ran)
    with pytest.raises(InputChanged, match=r"^ingest: the files its own config section names changed since this "
                                           r"run planned its key \(before it started\)"):
        execute(plan[0], cfg, plan, tmp_path, work, None, None, fresh=True)
    assert validate(plan[0].path)[0] is None


def test_a_file_changed_while_its_stage_runs(tmp_path, monkeypatch):
    import pipeline.ingest as ingest
    cfg, work, plan = plan_for(tmp_path)
    real = ingest.run

    def editing(section, ctx):
        stats = real(section, ctx)
        (tmp_path / "corpus.txt").write_text("Edited while the stage ran.\n")
        return stats

    monkeypatch.setattr(ingest, "run", editing)
    with pytest.raises(InputChanged, match=r"\(while it ran\); nothing is published"):
        execute(plan[0], cfg, plan, tmp_path, work, None, None, fresh=True)
    assert validate(plan[0].path)[0] is None and not plan[0].path.with_name(plan[0].key + ".partial").exists()
    monkeypatch.setattr(ingest, "run", real)
    (tmp_path / "corpus.txt").write_text("A first paragraph of text.\n\nA second one, here.\n")  # back as planned
    assert execute(plan[0], cfg, plan, tmp_path, work, None, None, fresh=True).stats["docs"] == 1
