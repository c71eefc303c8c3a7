"""The stage registry: the pipeline's table of contents, in execution order.

Each entry names the module holding the stage (``VERSION``, ``run``), the config section it reads,
and its inputs as role → upstream stage. Adding a stage means adding a line here and a section to
``pipeline.config.RunConfig``.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType


@dataclass(frozen=True)
class StageSpec:
    name: str
    module: str
    inputs: dict[str, str] = field(default_factory=dict)
    external_inputs: bool = False  # reads files outside the store: its key includes their fingerprint
    # (the module's ``fingerprint(cfg, root)``; None when this config names no such file, and the key is then
    # what it would be without them). It also checks that those files exist, at planning.
    sections: tuple[str, ...] = ()  # other config sections it reads (passed as ctx.extra, keyed, with the
    # fingerprint of the files they name, from SECTION_FINGERPRINTS)
    checked: bool = False  # its module's ``check(run_cfg, root)`` tests its options against the other sections
    # (e.g. fine-tuning options against the pretrained trunk), at planning, when the stage is to run

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)

    @property
    def version(self) -> str:
        return str(self.load().VERSION)


STAGES: list[StageSpec] = [
    StageSpec("ingest", "pipeline.ingest", external_inputs=True, checked=True),
    StageSpec("clean", "pipeline.clean", {"docs": "ingest"}),
    StageSpec("dedup", "pipeline.dedup", {"docs": "clean"}),
    StageSpec("decontaminate", "pipeline.decontaminate", {"docs": "dedup"}, sections=("tasks",)),
    StageSpec("tokenize", "pipeline.tokenize", {"docs": "decontaminate"}, external_inputs=True),  # tokenizer_path
    StageSpec("pretrain", "pipeline.pretrain", {"tokens": "tokenize"}, external_inputs=True,  # init_from
              checked=True),
    StageSpec("finetune", "pipeline.finetune", {"model": "pretrain"}, sections=("tasks",), checked=True),
    StageSpec("evaluate", "pipeline.evaluate",
              {"model": "pretrain", "tokens": "tokenize", "finetune": "finetune", "decontaminate": "decontaminate"},
              external_inputs=True, sections=("tasks",), checked=True),
]

# Config sections that name files outside the store: the module whose ``fingerprint(section, root)`` tells
# what those files are now (it joins the key of every stage that reads the section).
SECTION_FINGERPRINTS: dict[str, str] = {"tasks": "pipeline.tasks"}


def section_fingerprint(section: str, cfg, root, *extra) -> str | None:
    module = SECTION_FINGERPRINTS.get(section)
    return importlib.import_module(module).fingerprint(cfg, root, *extra) if module else None


def section_reads(spec: StageSpec, section: str, own_cfg, section_cfg, root):
    """What of another section a stage's key holds: ``(config part, fingerprint function, its arguments)``.
    The whole section and all the files it names, unless the stage module's ``section_reads(own_cfg, section,
    section_cfg)`` narrows them to what its output depends on: it returns that config part and the extra
    arguments of the section's fingerprint (the decontaminate stage reads only the tasks' evaluation splits)."""
    from pipeline.configtypes import to_dict
    narrow = getattr(spec.load(), "section_reads", None)
    part, extra = narrow(own_cfg, section, section_cfg) if narrow else (to_dict(section_cfg), ())
    return part, section_fingerprint, (section, section_cfg, root, *extra)


def names() -> list[str]:
    return [s.name for s in STAGES]


def get(name: str) -> StageSpec:
    for s in STAGES:
        if s.name == name:
            return s
    raise ValueError(f"unknown stage {name!r}; stages: {', '.join(names())}")
