from __future__ import annotations

from dataclasses import dataclass, field
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
