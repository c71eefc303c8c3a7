from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from pipeline import config
from pipeline.configtypes import ConfigError, bounded, build, to_dict
from pipeline.overrides import apply_override, parse_override


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
    o = build(Outer, {"n": "7", "flag": "true", "names": ["x", "y"], "inner": {"rate": "0.25", "mode": "b"}})
    assert (o.n, o.flag, o.names, o.inner.rate, o.inner.mode) == (7, True, ["x", "y"], 0.25, "b")
    assert to_dict(o)["inner"] == {"rate": 0.25, "mode": "b"}


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e999", float("inf")])
def test_a_float_must_be_finite(value):
    """pretrain.lr=inf passed lr > 0 and trained a model of NaN weights, published as built."""
    with pytest.raises(ConfigError, match=r"^inner.rate: got .*, expected a finite number$"):
        build(Outer, {"inner": {"rate": value}})
    with pytest.raises(ConfigError, match=r"^pretrain.lr: got 'inf', expected a finite number$"):
        config.load("tiny", overrides=["pretrain.lr=inf"])
    with pytest.raises(ConfigError, match=r"^inner.rate: got 'x', expected a number$"):
        build(Outer, {"inner": {"rate": "x"}})


def test_set_without_a_key_says_so():
    with pytest.raises(ConfigError, match=r"^--set expects key=value, got '=5': no key before =$"):
        config.load("tiny", overrides=["=5"])


def test_a_yaml_string_for_a_list_is_one_item_and_set_splits_at_commas(tmp_path):
    assert build(Outer, {"names": "data/a,v2.txt"}).names == ["data/a,v2.txt"]
    assert build(Outer, {"names": ""}).names == []
    assert parse_override(Outer, "names=x, y") == (["names"], ["x", "y"])
    f = tmp_path / "c.yaml"
    f.write_text("ingest:\n  sources:\n  - name: a\n    kind: text\n    paths: data/a,v2.txt\n")
    assert config.load(files=[f]).ingest.sources[0].paths == ["data/a,v2.txt"]
    assert config.load(overrides=["clean.disabled_rules=empty,c4_curly_bracket"]).clean.disabled_rules == [
        "empty", "c4_curly_bracket"]
    assert parse_override(Outer, "names=") == (["names"], [])  # once "cannot parse '' as JSON"


@dataclass(frozen=True)
class Named:
    label: str = "x"
    maybe: str | None = "y"


@pytest.mark.parametrize("value", [None, True, False])
def test_a_string_field_rejects_null_and_booleans(value):
    with pytest.raises(ConfigError, match=f"^label: got {value!r}, expected a string"):
        build(Named, {"label": value})
    assert build(Named, {"maybe": None}).maybe is None  # the type allows it
    assert build(Named, {"label": 5}).label == "5"


def test_a_yaml_null_or_yes_for_a_string_names_the_full_key(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("ingest:\n  sources:\n  - name: a\n    kind: jsonl\n    paths: [x.jsonl]\n    text_field: yes\n")
    with pytest.raises(ConfigError, match=r"^ingest.sources\[a\].text_field: got True, expected a string"):
        config.load(files=[f])
    f.write_text("run:\n  experiment:\n")
    with pytest.raises(ConfigError, match="^run.experiment: got None, expected a string"):
        config.load(files=[f])
    # in an optional list (a task's labels), the item's own reason, not "got [True, False], expected list or null"
    f.write_text("tasks:\n  tasks:\n  - {name: t, source: files, train: a.csv, labels: [yes, no]}\n")
    with pytest.raises(ConfigError, match=r"^tasks.tasks\[t\].labels\[0\]: got True, expected a string \(YAML reads"):
        config.load(files=[f])


@dataclass(frozen=True)
class Checked:
    lo: int = 0
    hi: int = 1

    def __post_init__(self) -> None:
        if self.lo > self.hi:
            raise ConfigError(f"lo: got {self.lo}, must be <= hi ({self.hi})")


@dataclass(frozen=True)
class Holder:
    checked: list[Checked] = field(default_factory=list)
    one: Checked = field(default_factory=Checked)


def test_set_takes_a_yaml_flow_list():
    assert config.load("tiny", overrides=["finetune.methods=[full, lora]"]).finetune.methods == ["full", "lora"]
    with pytest.raises(ConfigError, match=r"cannot parse '\[full,' as JSON .* or as a YAML list"):
        config.load("tiny", overrides=["finetune.methods=[full,"])


def test_set_reaches_a_list_item_by_index_or_name():
    cfg = config.load("tiny", overrides=["tasks.tasks[0].max_train=5", "tasks.tasks[stdlib_names].max_eval=7",
                                         "ingest.sources[-1].max_docs=9", "finetune.methods=[full, lora]",
                                         "finetune.methods[1]=adapter"])
    assert [(t.name, t.max_train, t.max_eval) for t in cfg.tasks.tasks] == [
        ("stdlib_area", 5, 40), ("stdlib_names", 120, 7)]
    assert cfg.ingest.sources[0].max_docs == 9 and cfg.finetune.methods == ["full", "adapter"]
    # a list the preset leaves at its default (the default preset sets no tasks) starts from the default
    default = config.load("default", overrides=["tasks.tasks[stdlib_area].max_train=11"])
    base = config.load("default")
    assert [t.max_train for t in default.tasks.tasks] == [11] + [t.max_train for t in base.tasks.tasks[1:]]
    assert default.tasks.tasks[1:] == base.tasks.tasks[1:]
    # the value is checked as the item's field: type, bounds, allowed values
    with pytest.raises(ConfigError, match=r"tasks.tasks\[0\].max_train"):
        config.load("tiny", overrides=["tasks.tasks[0].max_train=many"])
    with pytest.raises(ConfigError, match=r"^tasks.tasks\[2\]: no item 2; the list has 2 item"):
        config.load("tiny", overrides=["tasks.tasks[2].max_train=5"])
    with pytest.raises(ConfigError, match=r"no item named 'nope'; names: stdlib_area, stdlib_names"):
        config.load("tiny", overrides=["tasks.tasks[nope].max_train=5"])
    with pytest.raises(ConfigError, match=r"unknown key tasks.tasks\[0\].zzz; allowed keys in tasks.tasks\[0\]"):
        config.load("tiny", overrides=["tasks.tasks[0].zzz=5"])
    with pytest.raises(ConfigError, match=r"finetune.epochs is not a list"):
        config.load("tiny", overrides=["finetune.epochs[0]=5"])
    # a whole item set, then reached into; a name holding "="; an item named by its default name
    src = '{"name": "a=b", "kind": "text", "paths": ["x.txt"]}'
    data = config.resolve("tiny", [], [f"ingest.sources[0]={src}", "ingest.sources[a=b].max_docs=3"])
    [item] = data["ingest"]["sources"]
    assert (item["name"], item["kind"], item["paths"], item["max_docs"]) == ("a=b", "text", ["x.txt"], 3)
    json.dumps(data)  # plain data, as a config file's
    unnamed = {"ingest": {"sources": [{"kind": "stdlib_docs", "max_docs": 5}]}}
    apply_override(config.RunConfig, unnamed, "ingest.sources[stdlib_docs].max_docs=7")
    assert unnamed["ingest"]["sources"] == [{"kind": "stdlib_docs", "max_docs": 7}]


def test_set_parses_an_optional_list_as_json_or_yaml():
    """labels: list[str] | None took '[neg, pos]' as the two strings '[neg' and 'pos]'."""
    @dataclass(frozen=True)
    class Task:
        labels: list[str] | None = None

    assert parse_override(Task, "labels=[neg, pos]") == (["labels"], ["neg", "pos"])
    assert parse_override(Task, 'labels=["neg", "pos"]') == (["labels"], ["neg", "pos"])
    assert parse_override(Task, "labels=neg,pos") == (["labels"], ["neg", "pos"])
    assert parse_override(Task, "labels=null") == (["labels"], None)


def test_a_saved_run_config_is_a_config_file_and_duplicate_yaml_keys_are_refused(tmp_path):
    saved = tmp_path / "run-config.json"
    cfg = config.load("tiny", overrides=["clean.min_words=7"])
    saved.write_text(json.dumps({"_preset": "tiny", **to_dict(cfg)}))  # what lmforge run writes in data/runs/
    assert config.load("default", files=[saved]) == cfg
    dup = tmp_path / "dup.yaml"
    dup.write_text("clean:\n  min_words: 5\n  min_words: 9\n")
    with pytest.raises(ConfigError, match=r"is not valid YAML: .*key 'min_words' given twice"):
        config.load(files=[dup])
    dup.write_text("clean:\n  [a, b]: 1\n")
    with pytest.raises(ConfigError, match=r"dup.yaml: a key must be a name"):
        config.load(files=[dup])


def test_post_init_errors_name_the_full_key():
    with pytest.raises(ConfigError, match=r"^checked\[1\]\.lo: got 5"):
        build(Holder, {"checked": [{}, {"lo": 5}]})
    with pytest.raises(ConfigError, match=r"^one\.lo: got 5"):
        build(Holder, {"one": {"lo": 5}})
    cases = [("clean.disabled_rules=nope", "^clean.disabled_rules: unknown rule 'nope'"),
             ('clean.rules_by_source={"a": ["nope"]}', "^clean.rules_by_source.a: unknown rule 'nope'"),
             ("clean.min_mean_word_len=20", "^clean.min_mean_word_len: got 20.0, must be <="),
             ('ingest.sources=[{"name": "a"}, {"name": "b c"}]', r"^ingest.sources\[1\].name: got 'b c'"),
             ('ingest.sources=[{"name": "a", "kind": "jsonl"}]', r"^ingest.sources\[a\].paths: a jsonl source needs"),
             ("dedup.bands=4", "^dedup.bands and dedup.rows: set both or neither"),
             ('clean.rules_by_source={"nots": ["empty"]}', r"^clean.rules_by_source.nots: 'nots' names no ingest "
                                                           "source; allowed: stdlib_docs"),
             ('clean.code_sources=["stdlib_source", "wbe"]', r"^clean.code_sources\[1\]: 'wbe' names no ingest source"),
             # a seed numpy, torch or datasketch refuses: a traceback in the stage after the earlier ones had run
             ("finetune.seeds=[0,-1]", r"^finetune.seeds: got \[0, -1\], allowed: ints from 0 to 4294967295$"),
             ("finetune.seeds=[18446744073709551616]", r"^finetune.seeds: got \[18446744073709551616\], allowed"),
             ("pretrain.seed=-1", "^pretrain.seed: got -1, allowed: a number >= 0$"),
             ("dedup.seed=4294967296", "^dedup.seed: got 4294967296, allowed: a number < 4294967296$"),
             ("tokenize.seed=4294967296", "^tokenize.seed: got 4294967296, allowed: a number < 4294967296$"),
             ("tasks.tasks[0].split_seed=-1",
              r"^tasks.tasks\[stdlib_area\].split_seed: got -1, allowed: a number >= 0$"),
             # a list item is named as --set and its own checks name it: by its name (it was by index)
             ('tasks.tasks=[{"name": "a", "source": "files", "train": "a.tsv"}, {"name": "sent", "kind": "bogus"}]',
              r"^tasks.tasks\[sent\].kind: got 'bogus', allowed: 'classification'"),
             ('ingest.sources=[{"name": "a", "kind": "text", "paths": ["a.txt"], "max_docs": "many"}]',
              r"^ingest.sources\[a\].max_docs: got 'many', expected an integer"),
             # a number for a name is read as an index by --set: the index names the item then
             ('ingest.sources=[{"name": "a"}, {"name": "0", "kind": "text", "paths": ["a.txt"], "max_docs": "x"}]',
              r"^ingest.sources\[1\].max_docs: got 'x'")]
    for assignment, needle in cases:
        with pytest.raises(ConfigError, match=needle):
            config.load(overrides=[assignment])


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
    with pytest.raises(ConfigError, match=r"ingest.sources\[a\].kind: got 'xml', allowed: 'stdlib_docs'"):
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


def test_set_takes_several_assignments_after_one_flag():
    from flows.cli import parser
    args = parser().parse_args(["run", "--set", "clean.min_words=7", "dedup.threshold=0.7", "--set", "run.workers=1"])
    assert args.overrides == ["clean.min_words=7", "dedup.threshold=0.7", "run.workers=1"]
