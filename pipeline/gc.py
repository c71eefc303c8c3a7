"""Garbage collection of the stage store: outputs, partial folders and caches that no config uses.

Stage folders are content-addressed, so an old output is never overwritten: after a code VERSION bump,
an edited input file or an abandoned experiment, its folder stays in ``data/work`` for ever. ``collect``
finds what no *live* config reaches and removes it:

- live configs: the one given (the current one) and, unless ``only_current``, every config a run
  recorded in ``data/runs/`` (configs that no longer validate are reported and ignored);
- live keys: every stage key those configs compute now (``plan.compute``); a stage folder
  ``<stage>/<key>`` or partial ``<stage>/<key>.partial`` with another key is garbage, and so are the
  ``.old-*`` folders a crashed publication left;
- the clean stage's attribute cache: a file is live when it holds the attributes of a shard of a live
  clean stage's upstream output (with that stage's normalization options); a folder with no live file goes;
- runs going on now (``pipeline.locks.run_lock_path`` held): the keys they planned are live, and with
  ``only_current`` their configs are current too; outputs another process builds now are kept;
- partial folders written to in the last ``busy_minutes`` are kept (a run may be writing them), and
  ``_bench`` (the benchmarks' cache) and any other folder not laid out as ``<stage>/<key>`` are left alone.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import plan as planning
from pipeline import stages as registry
from pipeline.config import RunConfig
from pipeline.configtypes import ConfigError, build, config_path
from pipeline.ingest import IngestError
from pipeline.locks import (LOCKS, acquire, held_elsewhere, planned_keys, release, run_lock_path,
                            stage_lock_path)
from pipeline.store import read_manifest, validate

BUSY_MINUTES = 15.0


@dataclass
class Garbage:
    remove: list[tuple[Path, int, str]] = field(default_factory=list)  # (folder or file, bytes, why)
    kept_busy: list[Path] = field(default_factory=list)
    kept_blocked: dict[str, str] = field(default_factory=dict)  # stage -> why all its outputs stay (a missing file)
    ignored_configs: list[tuple[Path, str]] = field(default_factory=list)
    live_configs: int = 0
    linked: int = 0  # bytes of the files listed that stay on disk: hard links outside them remain (mlruns/, outputs)

    @property
    def bytes(self) -> int:
        return sum(size for _, size, _ in self.remove)


def recorded_configs(root: Path) -> tuple[list[tuple[Path, RunConfig]], list[tuple[Path, str]]]:
    """The configs of past runs (``data/runs/*-config.json``) with their files, and the files that no
    longer validate."""
    configs, bad = [], []
    for path in run_config_files(root):
        try:
            configs.append((path, read_run_config(path)[0]))
        except BAD_CONFIG as e:
            bad.append((path, f"{type(e).__name__}: {e}"))
    return configs, bad


# what reading a saved config that no longer loads raises
BAD_CONFIG = (OSError, ValueError, ConfigError, TypeError)


def run_config_files(root: Path) -> list[Path]:
    """The configs ``lmforge run`` saved, oldest first."""
    return sorted((root / "data" / "runs").glob("*-config.json"))


def read_run_config(path: Path) -> tuple[RunConfig, str]:
    """A saved run config and the preset it was run with (``_preset``)."""
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ConfigError(f"{path.name}: a JSON {type(data).__name__}, not a config object")
    preset = data.get("_preset", "default")
    return build(RunConfig, {k: v for k, v in data.items() if not k.startswith("_")}), preset


def _named_outputs(cfg: RunConfig, root: Path, work: Path) -> list[tuple[str, str]]:
    """(stage, key) of the store's outputs that a config names as a file (``pretrain.init_from``,
    ``tokenize.tokenizer_path``: continued pretraining from a model in the store): live, like its own."""
    out = []
    for named in (cfg.pretrain.init_from, cfg.tokenize.tokenizer_path):
        if not named:
            continue
        try:
            rel = config_path(root, named).resolve().relative_to(work.resolve())
        except ValueError:  # outside the store
            continue
        if len(rel.parts) >= 2:  # <stage>/<key>[.partial]/...
            out.append((rel.parts[0], rel.parts[1].partition(".")[0]))
    return out


def find(current: RunConfig, root: Path, only_current: bool = False,
         busy_minutes: float = BUSY_MINUTES) -> Garbage:
    """What ``collect`` would remove (nothing is touched)."""
    work = root / "data" / "work"
    garbage = Garbage()
    configs: list[tuple[Path | None, RunConfig]] = [(None, current)]
    history, garbage.ignored_configs = recorded_configs(root)
    run_locks = sorted(root.joinpath("data", "runs").glob("*.lock"))
    running = {lock for lock in run_locks if held_elsewhere(lock)}
    if only_current:  # a run going on now is current too: what it reads or writes must stay
        history = [(p, c) for p, c in history if run_lock_path(p) in running]
        garbage.ignored_configs = [(p, why) for p, why in garbage.ignored_configs if run_lock_path(p) in running]
    latest = max((p for p, _ in history), key=lambda p: p.name, default=None)  # (names start with the time)
    configs += [(p, c) for p, c in history if c != current]  # the latest run's config is often current
    live: dict[str, set[str]] = {}
    for lock in running:  # the keys it planned (a corpus file edited since gives its config other keys now),
        for stage, key in planned_keys(lock).items():  # whether or not its saved config loads here
            live.setdefault(stage, set()).add(key)
    live_attrs: set[Path] = set()  # attribute files of the documents a live config cleans
    for path, cfg in configs:
        try:  # a missing outside file keeps the keys upstream of its stage (missing_ok), so their outputs stay
            planned = planning.compute(cfg, work, root, missing_ok=True)
        except IngestError as e:  # a past config's corpus is gone: no key of it can be computed, its outputs
            if path is None:      # are garbage like any other; the current config's error stands
                raise
            garbage.ignored_configs.append((path, f"{type(e).__name__}: {e}"))
            continue
        garbage.live_configs += 1
        for ps in planned:
            live.setdefault(ps.name, set()).add(ps.key)
        if path is None or path == latest:  # a file away for now (another branch, a drive): keys unknown, so none
            for stage, why in planning.blocked_stages(planned).items():  # of those stages' outputs go
                garbage.kept_blocked.setdefault(stage, f"{path.name if path else 'the current config'}: {why}")
        for stage, key in _named_outputs(cfg, root, work):  # a model or tokenizer the config points into
            live.setdefault(stage, set()).add(key)
        live_attrs |= _live_attr_files(cfg, planned, work)
    now = time.time()
    pending: list[tuple[Path, str]] = []  # (folder or file, why); the bytes each frees are counted at the end
    for name in registry.names():
        folder = work / name
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            key, _, suffix = entry.name.partition(".")
            # a live key's partial is a run to resume, unless the output is published: then it is left over
            done = suffix == "partial" and validate(folder / key)[0] is not None
            if not entry.is_dir() or (key in live.get(name, ()) and suffix in ("", "partial") and not done):
                continue
            if name in garbage.kept_blocked and suffix == "":
                continue  # perhaps the output of the latest run, whose file is away for now
            if suffix in ("", "partial") and held_elsewhere(stage_lock_path(work, name, key)) or (
                    suffix == "partial" and now - _newest_mtime(entry) < busy_minutes * 60):
                garbage.kept_busy.append(entry)  # a process builds (or waits for) that output now
                continue
            why = ("partial output left over beside its published output" if done else
                   "partial output of a config no run uses" if suffix == "partial" else
                   "left by an interrupted publication" if suffix.startswith("old-") else
                   "output of a config no run uses")
            pending.append((entry, why))
    for lock in sorted(work.joinpath(LOCKS).glob("*.lock")):  # a lock file per output built: its output's go
        stage, _, key = lock.stem.rpartition("-")
        if key not in live.get(stage, ()) and not held_elsewhere(lock):
            pending.append((lock, "lock file of an output no config uses"))
    pending += [(lock, "lock file of a run that ended") for lock in run_locks if lock not in running]  # (killed)
    attrs = work.joinpath("_cache", "clean_attrs")
    live_dirs = {p.parent for p in live_attrs}
    if attrs.is_dir() and not running:  # (a run going on may clean documents no config reaches now)
        for entry in sorted(attrs.iterdir()):
            if entry.is_dir() and entry not in live_dirs:
                pending.append((entry, "clean attributes of options no config uses"))
            elif entry.is_dir():
                pending += [(f, "clean attributes of documents no config uses")
                            for f in sorted(entry.iterdir())  # (a dot file: one a clean run is writing)
                            if f.is_file() and not f.name.startswith(".") and f not in live_attrs]
    freed, garbage.linked = _freed([p for p, _ in pending])
    garbage.remove = [(p, size, why) for (p, why), size in zip(pending, freed)]
    return garbage


def collect(garbage: Garbage) -> int:
    """Remove what ``find`` listed; return the bytes freed."""
    freed = 0
    for path, size, _ in garbage.remove:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.suffix == ".lock":  # removed while held, so that no process holds a lock on a file gone
            fd = acquire(path, block=False)
            if fd is None:  # taken since find looked: in use again
                continue
            path.unlink(missing_ok=True)
            release(fd)
        else:
            path.unlink(missing_ok=True)
        freed += size if not path.exists() else 0
    return freed


def _live_attr_files(cfg: RunConfig, planned: list, work: Path) -> set[Path]:
    from pipeline.clean import cache

    by_name = {ps.name: ps for ps in planned}
    clean = by_name.get("clean")
    if clean is None:
        return set()
    upstream = read_manifest(by_name[clean.input_stages["docs"]].path)
    if upstream is None:
        return set()
    return set(cache.shard_files(work, upstream, cfg.section("clean").normalize_options()).values())


def _freed(paths: list[Path]) -> tuple[list[int], int]:
    """The bytes that removing all of ``paths`` (folders or files) frees, per path, and the bytes that stay. A
    file hard-linked from elsewhere (a finetune run reused by another output, an MLflow artifact) frees nothing
    while a link outside ``paths`` remains; its bytes count once, for the path that holds its last link."""
    files = [[f for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file() and not f.is_symlink()]
             for p in paths]
    links: dict[tuple[int, int], list[int]] = {}  # (device, inode) -> [links found here, size, links in all]
    owner: dict[tuple[int, int], int] = {}
    for i, group in enumerate(files):
        for f in group:
            st = f.stat()
            seen = links.setdefault((st.st_dev, st.st_ino), [0, st.st_size, st.st_nlink])
            seen[0] += 1
            owner[(st.st_dev, st.st_ino)] = i
    freed, linked = [0] * len(paths), 0
    for ident, (found, size, nlink) in links.items():
        if found >= nlink:
            freed[owner[ident]] += size
        else:
            linked += size
    return freed, linked


def _newest_mtime(folder: Path) -> float:
    return max([folder.stat().st_mtime, *(p.stat().st_mtime for p in folder.rglob("*"))])
