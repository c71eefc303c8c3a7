from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from pipeline import config
from pipeline.configtypes import ConfigError, bounded, build, parse_override, to_dict


@dataclass(frozen=True)
class Inner:
    rate: float = bounded(0.5, ge=0.0, le=1.0)
    mode: Literal["a", "b"] = "a"


@dataclass(frozen=True)
class Outer:
    n: int = 3
    flag: bool = False
    names: list[str] = field(default_factory=list)
    inner: Inner = field(default_factory=Inner)
    maybe: int | None = None


def test_build_coerces_and_validates():
    o = build(Outer, {"n": "7", "flag": "true", "names": "x,y", "inner": {"rate": "0.25", "mode": "b"}})
    assert (o.n, o.flag, o.names, o.inner.rate, o.inner.mode) == (7, True, ["x", "y"], 0.25, "b")
    assert to_dict(o)["inner"] == {"rate": 0.25, "mode": "b"}


@pytest.mark.parametrize("data, needle", [
    ({"nope": 1}, "unknown key nope; allowed keys: n, flag, names, inner, maybe"),
    ({"n": "seven"}, "n: got 'seven', expected an integer"),
    ({"inner": {"mode": "c"}}, "inner.mode: got 'c', allowed: 'a', 'b'"),
    ({"inner": {"rate": 2}}, "inner.rate: got 2.0, allowed: a number <= 1.0"),
    ({"inner": {"bogus": 1}}, "unknown key inner.bogus"),
    ({"flag": "maybe"}, "flag: got 'maybe', expected a boolean"),
])
def test_errors_name_key_value_and_allowed(data, needle):
    with pytest.raises(ConfigError) as e:
        build(Outer, data)
    assert needle in str(e.value)


def test_override_parsed_to_field_type():
    assert parse_override(Outer, "inner.rate=0.1") == (["inner", "rate"], 0.1)
    assert parse_override(Outer, "names=[\"a\", \"b\"]") == (["names"], ["a", "b"])
    assert parse_override(Outer, "maybe=null") == (["maybe"], None)
    with pytest.raises(ConfigError, match="unknown key inner.zzz; allowed keys in inner: rate, mode"):
        parse_override(Outer, "inner.zzz=1")
    with pytest.raises(ConfigError, match="expects key=value"):
        parse_override(Outer, "n")


def test_run_config_presets_files_and_sets(tmp_path):
    f = tmp_path / "my.yaml"
    f.write_text("ingest:\n  docs_per_shard: 10\n")
    cfg = config.load("tiny", [f], ["ingest.max_doc_chars=5000"])
    assert cfg.ingest.docs_per_shard == 10 and cfg.ingest.max_doc_chars == 5000
    assert cfg.ingest.sources[0].max_docs == 120  # from the tiny preset
    with pytest.raises(ConfigError, match="--preset: got 'huge', allowed: "):
        config.load("huge")
    with pytest.raises(ConfigError, match="unknown key ingest.min_words"):
        config.load("default", overrides=["ingest.min_words=3"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("ingest: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load("default", [bad])


def test_source_validation():
    with pytest.raises(ConfigError, match="needs at least one path"):
        config.load("default", overrides=['ingest.sources=[{"name": "x", "kind": "jsonl"}]'])
    with pytest.raises(ConfigError, match="duplicate source name 'a'"):
        config.load("default", overrides=['ingest.sources=[{"name": "a"}, {"name": "a"}]'])
    with pytest.raises(ConfigError, match=r"ingest.sources\[0\].kind: got 'xml', allowed: 'stdlib_docs'"):
        config.load("default", overrides=['ingest.sources=[{"name": "a", "kind": "xml", "paths": ["x"]}]'])


def test_config_path_takes_relative_paths_from_the_root_and_expands_home(monkeypatch, tmp_path):
    from pipeline.configtypes import config_path
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    root = tmp_path / "project"
    assert config_path(root, "data/x.tsv") == root / "data" / "x.tsv"
    assert config_path(root, "/srv/x.tsv") == Path("/srv/x.tsv")
    assert config_path(root, "~/x.tsv") == tmp_path / "home" / "x.tsv"


def test_task_files_named_from_home_are_read(monkeypatch, tmp_path):
    from pipeline.tasks import TasksConfig, load_task
    monkeypatch.setenv("HOME", str(tmp_path))
    rows = "".join(f"{'pos' if i % 2 else 'neg'}\tfilm number {i}\n" for i in range(40))
    (tmp_path / "t.tsv").write_text("label\ttext\n" + rows)
    cfg = build(TasksConfig, {"tasks": [{"name": "t", "kind": "classification", "source": "files",
                                         "train": "~/t.tsv", "text_field": "text", "label_field": "label"}]})
    data = load_task(cfg.tasks[0], tmp_path / "elsewhere")
    assert sum(len(v) for v in data.splits.values()) == 40 and sorted(data.labels) == ["neg", "pos"]
