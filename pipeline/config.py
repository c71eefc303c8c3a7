"""The run's config tree: one typed section per stage plus ``run``, from presets, YAML files and --set.

Resolution order: dataclass defaults (the ``default`` preset) ← ``pipeline/presets/<preset>.yaml`` ←
each ``--config`` file ← each ``--set a.b=value``. Any unknown key or bad value fails here, before
any work starts, naming the key, the value and what is allowed.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipeline.configtypes import ConfigError, bounded, build, deep_merge, to_dict
from pipeline.overrides import apply_override
from pipeline.clean.config import CleanConfig
from pipeline.decontaminate.config import DecontaminateConfig
from pipeline.dedup.config import DedupConfig
from pipeline.evaluate.config import EvaluateConfig
from pipeline.finetune.config import FinetuneConfig
from pipeline.ingest.config import IngestConfig
from pipeline.pretrain.config import PretrainConfig
from pipeline.tasks.config import TasksConfig
from pipeline.tokenize.config import TokenizeConfig

PRESETS_DIR = Path(__file__).parent / "presets"


@dataclass(frozen=True)
class RunSection:
    """Settings of the run itself; none of them changes any stage's output."""
    workers: int = bounded(0, ge=0)  # processes for sharded stages; 0 = one per CPU core
    tracking: bool = True            # MLflow on/off (off also when MLflow is missing or unreachable)
    experiment: str = "lmforge"

    def n_workers(self) -> int:
        return self.workers or max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class RunConfig:
    run: RunSection = field(default_factory=RunSection)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    clean: CleanConfig = field(default_factory=CleanConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    decontaminate: DecontaminateConfig = field(default_factory=DecontaminateConfig)
    tokenize: TokenizeConfig = field(default_factory=TokenizeConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    tasks: TasksConfig = field(default_factory=TasksConfig)  # fine-tuning tasks (read by several stages)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)

    def __post_init__(self) -> None:
        # a source name that names no source is a typo whose rules would silently not apply (the stdlib's
        # source code is a code source by default, whether or not this config reads it)
        names = [s.name for s in self.ingest.sources]
        named = {f"clean.rules_by_source.{n}": n for n in self.clean.rules_by_source}
        named.update({f"clean.code_sources[{i}]": n for i, n in enumerate(self.clean.code_sources)
                      if n != "stdlib_source"})
        for key, name in named.items():
            if name not in names:
                raise ConfigError(f"{key}: {name!r} names no ingest source; allowed: {', '.join(names)}")

    def section(self, stage: str) -> Any:
        return getattr(self, stage)


def presets() -> list[str]:
    return sorted(["default", *(p.stem for p in PRESETS_DIR.glob("*.yaml") if p.stem != "default")])


def _unique_keys_loader() -> type:
    """A safe YAML loader that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"key {key!r} given twice",
                                                            key_node.start_mark)
                seen.add(key)
            return super().construct_mapping(node, deep=deep)
    return Loader


def _read_yaml(path: Path) -> dict[str, Any]:
    """A config file (YAML, or JSON: a config that ``lmforge run`` saved under data/runs/, whose ``_preset``
    is left out: ``--preset`` says which preset it goes over)."""
    import yaml
    try:
        data = yaml.load(path.read_text(), Loader=_unique_keys_loader()) or {}
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}") from e
    except TypeError as e:  # a list or mapping as a key
        raise ConfigError(f"config file {path}: a key must be a name ({e})") from e
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping at the top level, got {type(data).__name__}")
    data.pop("_preset", None)
    return data


def resolve(preset: str = "default", files: list[str | Path] = (), overrides: list[str] = ()) -> dict[str, Any]:
    """The merged plain-dict config (before validation)."""
    if preset not in presets():
        raise ConfigError(f"--preset: got {preset!r}, allowed: {', '.join(presets())}")
    data: dict[str, Any] = {}
    preset_file = PRESETS_DIR / f"{preset}.yaml"
    if preset_file.exists():
        data = deep_merge(data, _read_yaml(preset_file))
    for f in files:
        data = deep_merge(data, _read_yaml(Path(f)))
    for assignment in overrides:
        apply_override(RunConfig, data, assignment)
    return data


def load(preset: str = "default", files: list[str | Path] = (), overrides: list[str] = ()) -> RunConfig:
    return build(RunConfig, resolve(preset, files, overrides))


def with_init_tokenizer(cfg: RunConfig, root: Path) -> RunConfig:
    """Continued pretraining (``pretrain.init_from``) needs the model's own tokenizer: without
    ``tokenize.tokenizer_path``, the tokenize stage reuses the one the model folder holds (``tokenizer/``); a
    model folder without one is a ConfigError (a tokenizer trained afresh gives its token ids other meanings).
    Applied to a config resolved from the command line, not to a saved one (it holds what that run did)."""
    init = cfg.pretrain.init_from
    if not init or cfg.tokenize.tokenizer_path is not None:
        return cfg
    from pipeline.pretrain import init_model_dir
    from pipeline.tokenize import resolve_model_path  # the lookup tokenize itself makes of tokenizer_path
    try:
        init_model_dir(init, root)
    except ConfigError:
        return cfg  # no model there at all: planning names that (and gc, which tolerates it, goes on)
    try:
        resolve_model_path(init, root)
    except ConfigError:  # a tokenizer trained afresh gives the model's token ids other meanings
        raise ConfigError(f"pretrain.init_from: {init} holds no tokenizer (tokenizer/tokenizer.model), and continued "
                          "pretraining needs the one the model was trained with: name a pretrain output's model/ "
                          "folder, which holds both (its checkpoint/ folder is for resuming a killed run), or the "
                          "tokenizer with tokenize.tokenizer_path") from None
    return replace(cfg, tokenize=replace(cfg.tokenize, tokenizer_path=init))


def dump(cfg: RunConfig) -> str:
    return json.dumps(to_dict(cfg), indent=1, sort_keys=False)


__all__ = ["RunConfig", "RunSection", "ConfigError", "load", "resolve", "dump", "presets", "to_dict",
           "with_init_tokenizer"]
