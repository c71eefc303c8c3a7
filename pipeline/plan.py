"""Which stages run, which are served from cache: a pure function of the config and the store.

Keys are computed in order before anything runs (each includes its inputs' keys, so a change
propagates downstream). Selection follows DVC/Kedro: ``stage`` runs one stage from cached inputs,
``from_`` reruns a stage and everything after it, ``until`` stops after a stage, ``force`` ignores
every cache. A stage that is not selected but feeds a selected one must be cached, else a clear error.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from pipeline import stages as registry
from pipeline.config import RunConfig
from pipeline.configtypes import BY_CONTENT, ConfigError, to_dict
from pipeline.store import DIGESTS, Manifest, stage_dir, stage_key, validate

Action = Literal["run", "cached", "skip"]


FRESH = ("forced", "selected to rerun")  # the reasons whose run starts its output over, resuming nothing


class PlanError(RuntimeError):
    """The selection cannot run (e.g. an upstream output is missing)."""


@dataclass
class PlannedStage:
    name: str
    key: str
    version: str
    config: dict[str, Any]
    inputs: dict[str, str]          # role -> upstream key (or the external fingerprint)
    input_stages: dict[str, str]    # role -> upstream stage name
    path: Path
    action: Action = "skip"
    reason: str = ""
    manifest: Manifest | None = field(default=None, repr=False)
    data_key: str = ""  # what downstream stages take as this input: ``key`` without REPORT_ONLY settings
    sources: dict[str, str] = field(default_factory=dict)  # role -> the upstream's folder key (lineage)


def stage_config(cfg: RunConfig, name: str) -> dict[str, Any]:
    """What of its own config section a stage's key holds: all of it, unless the stage module's
    ``key_config(section, run_cfg)`` leaves out settings that cannot change its output in this config (LoRA's rank
    when no run uses LoRA, training options of a tokenizer that is reused, a masking rate a decoder is not scored
    with): changing one then rebuilds nothing."""
    narrow = getattr(registry.get(name).load(), "key_config", None)  # (run_cfg: what another section says)
    return narrow(cfg.section(name), cfg) if narrow else to_dict(cfg.section(name))


MISSING = "missing: "  # what ``compute(missing_ok=True)`` puts in a key for an outside file it could not read


def blocked_stages(planned: list[PlannedStage]) -> dict[str, str]:
    """The stages of a ``compute(missing_ok=True)`` plan whose key an absent outside file left unknown, and why:
    that file's error, or "needs <stage>" for the stages after one (their keys hang on it)."""
    out: dict[str, str] = {}
    for ps in planned:
        missing = [str(v).removeprefix(MISSING) for v in ps.inputs.values() if str(v).startswith(MISSING)]
        after = [up for up in ps.input_stages.values() if up in out]
        if missing or after:
            out[ps.name] = missing[0] if missing else f"needs {after[0]}"
    return out


def _fingerprint(missing_ok: bool, fn: Callable[..., str | None], *args: Any) -> str | None:
    """A stage's fingerprint of the outside files its config names. A missing one is a ConfigError, or with
    ``missing_ok`` (gc over past configs) a key of its own that no output has, so that the stages upstream
    of it keep their keys and their outputs stay live."""
    try:
        return fn(*args)
    except ConfigError as e:
        if not missing_ok:
            raise
        return f"{MISSING}{e}"


def compute(cfg: RunConfig, work: Path, root: Path, missing_ok: bool = False) -> list[PlannedStage]:
    """Keys and cache state of every stage, with no selection applied (``missing_ok``: see _fingerprint)."""
    DIGESTS.use(work / "_cache" / "digests.json")  # outside files' content digests, kept by their stat
    try:
        return _compute(cfg, work, root, missing_ok)
    finally:
        DIGESTS.save()


def _compute(cfg: RunConfig, work: Path, root: Path, missing_ok: bool) -> list[PlannedStage]:
    keys: dict[str, str] = {}  # per stage, the key its downstream stages take: the key of its data (see below)
    folders: dict[str, str] = {}  # per stage, its own key: the folder a downstream stage reads
    out = []
    for spec in registry.STAGES:
        inputs = {role: keys[up] for role, up in spec.inputs.items()}
        reads = {name: registry.section_reads(spec, name, cfg.section(spec.name), cfg.section(name), root)
                 for name in spec.sections}
        inputs.update(outside_files(cfg, spec.name, root, missing_ok, reads))
        conf = stage_config(cfg, spec.name)
        if spec.sections:
            conf = {**conf, "_sections": {name: part for name, (part, _, _) in reads.items()}}
        key = stage_key(spec.name, spec.version, conf, inputs)
        # Settings that change only a stage's own reports (``REPORT_ONLY``: plots, sample sizes), or only what its
        # output says of its data (``data_view``: the decontaminate stage's task names) rebuild that stage, not
        # its downstream: they take the key of its data, computed without them.
        module = spec.load()
        data_conf = {k: v for k, v in conf.items() if k not in getattr(module, "REPORT_ONLY", ())}
        if data_view := getattr(module, "data_view", None):
            data_conf = data_view(data_conf)
        keys[spec.name] = key if data_conf == conf else stage_key(spec.name, spec.version, data_conf, inputs)
        path = stage_dir(work, spec.name, key)
        manifest, why = validate(path)
        if BY_CONTENT in conf.values():  # a path the key holds by content is shown (params, manifest) as set
            own = to_dict(cfg.section(spec.name))
            conf = {k: own[k] if v == BY_CONTENT else v for k, v in conf.items()}
        ps = PlannedStage(spec.name, key, spec.version, conf, inputs, dict(spec.inputs), path,
                          action="cached" if manifest else "run", reason=why, manifest=manifest,
                          data_key=keys[spec.name], sources={role: folders[up] for role, up in spec.inputs.items()})
        folders[spec.name] = key
        if ps.action == "run" and path.exists():
            ps.reason = f"damaged output ({why})"
        elif ps.action == "run":
            ps.reason = "not built yet"
        out.append(ps)
    return out


def outside_files(cfg: RunConfig, name: str, root: Path, missing_ok: bool = False,
                  reads: dict[str, Any] | None = None) -> dict[str, str]:
    """What the files outside the store that stage ``name`` reads hold now (content fingerprints), as its key
    holds them: ``external`` (its own section's files: the corpus, a reused tokenizer or model, extra texts) and
    ``<section>_files`` (another section's: the tasks' files). None of a kind when the config names no such file
    (the key then stays as it was before that option existed)."""
    spec = registry.get(name)
    out = {}
    if spec.external_inputs and (fp := _fingerprint(missing_ok, spec.load().fingerprint, cfg.section(name),
                                                    root)) is not None:
        out["external"] = fp
    if reads is None:
        reads = {s: registry.section_reads(spec, s, cfg.section(name), cfg.section(s), root) for s in spec.sections}
    for section, (_, fn, args) in reads.items():
        if (fp := _fingerprint(missing_ok, fn, *args)) is not None:
            out[f"{section}_files"] = fp
    return out


def select(planned: list[PlannedStage], stage: str | None = None, from_: str | None = None,
           until: str | None = None, force: bool = False) -> list[PlannedStage]:
    names = [p.name for p in planned]
    for flag, value in (("--stage", stage), ("--from", from_), ("--until", until)):
        if value is not None and value not in names:
            raise PlanError(f"{flag}: got {value!r}, allowed: {', '.join(names)}")
    if stage and (from_ or until):
        raise PlanError(f"--stage and {'--from' if from_ else '--until'} cannot be combined: --stage reruns one "
                        "stage; --from X --until Y reruns a range")
    last = names.index(until) if until else len(names) - 1
    if from_ and names.index(from_) > last:
        raise PlanError(f"--until {until} comes before --from {from_}: nothing to run (the order is "
                        f"{', '.join(names)})")
    if stage:
        selected, forced = {stage}, {stage}
    elif from_:
        selected = set(names[names.index(from_):last + 1])
        forced = set(selected)
    else:
        selected, forced = set(names[:last + 1]), set()
    if force:
        forced = set(selected)
    by_name = {p.name: p for p in planned}
    missing = {p.name: p.reason for p in planned}  # "not built yet" / "damaged output (...)", before "not selected"
    for p in planned:
        if p.name not in selected:
            p.action, p.reason = "skip", "not selected"
        elif p.name in forced:
            p.action, p.reason = "run", FRESH[0] if force else FRESH[1]
    for p in planned:  # every input of a selected stage must come from somewhere
        if p.action == "skip":
            continue
        for up in p.input_stages.values():
            u = by_name[up]
            if u.action == "skip" and u.manifest is None:
                from pipeline.locks import held_elsewhere, stage_lock_path
                if held_elsewhere(stage_lock_path(u.path.parent.parent, up, u.key)):  # (u.path: work/stage/key)
                    raise PlanError(f"stage {p.name} needs {up}/{u.key}, which another lmforge process is building "
                                    "now: run this command again once it is done")
                raise PlanError(f"stage {p.name} needs {up}/{u.key}, which is missing or incomplete "
                                f"({missing[up] or 'not built'}); run it first: the same lmforge run command "
                                f"(same --preset, --config and --set) with --until {up}")
    return planned


def make_plan(cfg: RunConfig, work: Path, root: Path, **selection: Any) -> list[PlannedStage]:
    """The selected plan; a stage to run whose options clash with another section's is a ConfigError here,
    before any stage runs (a fine-tuning option the pretrained trunk cannot take, found after pretraining,
    would cost the pretraining run)."""
    planned = select(compute(cfg, work, root), **selection)
    _check_options(planned, cfg, root, set())  # before the cached inputs are verified (digests); a
    # finetune check reads each files task whole (the stage reads it again: left so, a planning error is worth it)
    running = {p.name for p in planned if p.action == "run"}
    verify_inputs(planned)
    _check_options(planned, cfg, root, running)  # the stages that verify_inputs turned to run
    return planned


def _check_options(planned: list[PlannedStage], cfg: RunConfig, root: Path, done: set[str]) -> None:
    for ps in planned:
        spec = registry.get(ps.name)
        if ps.action == "run" and spec.checked and ps.name not in done:
            spec.load().check(cfg, root)


def verify_inputs(planned: list[PlannedStage]) -> None:
    """Check the cached inputs of every stage to run byte for byte (their digests; planning checks only sizes):
    a same-size damage would feed the stage silently. A damaged input runs again first; one that the selection
    leaves out (``--stage``) is a PlanError. Costs one read of those inputs, only when something runs."""
    by_name = {p.name: p for p in planned}
    checked: set[str] = set()
    for p in reversed(planned):  # downstream first: an input marked to run here gets its own inputs checked
        if p.action != "run":
            continue
        for up in p.input_stages.values():
            u = by_name[up]
            if u.action == "run" or u.manifest is None or up in checked:  # rebuilt anyway: not read for nothing
                continue
            checked.add(up)
            m, why = validate(u.path, deep=True)
            if m is not None:
                continue
            if u.action == "skip":
                raise PlanError(f"stage {p.name} needs {up}/{u.key}, whose output is damaged ({why}); rebuild it: "
                                f"the same lmforge run command with --from {up}")
            u.action, u.reason, u.manifest = "run", f"damaged output ({why})", None
