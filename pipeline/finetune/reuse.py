"""Runs shared between finetune outputs: a run whose inputs are unchanged is copied, not trained again.

The stage's key covers every run of every task, so any finetune setting, another seed, a task added or a
LoRA rank changed, gives a new output folder. Each run has its own key as well (``run_key``): the stage's
code version, the settings that run reads (a full run does not read ``lora_r``; ``methods``, ``seeds`` and
``baseline`` only say which runs exist), its method, init and seed, the effective ``max_len``, the device
type and thread count (both change float rounding), and the content of what it trains on: the task's train
and validation examples and labels as this stage wrote them, the trunk's config and tokenizer, and, for a
run from the pretrained model, its weights (a from-scratch run never reads them). The key is written into
the run's folder (``RUN_KEY``); a run another published finetune output holds under the same key is linked
(or copied) in with its reports, after the run's own files are checked against that output's manifest and the
run's seal (by digest; the rest of that output may be damaged: a damaged output rebuilt keeps its intact runs).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from pipeline.store import (DIGESTS, atomic_output, atomic_write_text, canonical_json, file_digest, read_manifest,
                            validate)

RUN_KEY = "run_key"  # the file in each run folder holding its key
RUN_FILES = "run_files.json"  # the run folder's own manifest: each other file and its digest, written last
NOT_A_RUN_SETTING = ("methods", "seeds", "baseline", "threads", "device", "max_len")  # in the key as resolved


def run_settings(cfg: Any, method: str, kind: str = "classification") -> dict[str, Any]:
    """The settings one run of ``method`` on a task of ``kind`` reads: the stage's key config without what only
    other methods read, nor the settings that only choose the runs (``NOT_A_RUN_SETTING``); a tagger's ``pooling``
    is its default whatever the config says (it scores every word: nothing is pooled; the default, not left out,
    so that the keys of runs trained before stay)."""
    from pipeline.finetune import key_config, unused_settings
    uses = {cfg.then} if method == "two_stage" else {method}
    drop = set(unused_settings(uses, method == "two_stage")) | set(NOT_A_RUN_SETTING)
    out = {k: v for k, v in key_config(cfg).items() if k not in drop}
    if kind == "tagging" and "pooling" in out:
        out["pooling"] = type(cfg).__dataclass_fields__["pooling"].default
    return out


def task_digests(task_dir: Path) -> dict[str, str]:
    """What a run trains and selects on: the task's train and validation examples and its labels, as the stage
    wrote them (in its partial folder: hashed here, not kept in the stat-keyed cache)."""
    return {name: file_digest(task_dir / name) for name in ("train.jsonl", "validation.jsonl", "labels.json")}


def trunk_digests(model_dir: Path, tokenizer: Path) -> dict[str, str]:
    """What a run reads of the pretrained model folder: its config, tokenizer and weights (content digests)."""
    return {"config": DIGESTS.digest(model_dir / "model_config.json"), "tokenizer": DIGESTS.digest(tokenizer),
            "weights": DIGESTS.digest(model_dir / "model.safetensors")}


def run_key(cfg: Any, version: str, spec: tuple[str, str, int], task: dict[str, str], trunk: dict[str, str],
            max_len: int, device: str, threads: int, kind: str = "classification") -> str:
    """The key of one run (module docstring): equal keys train the same weights. ``task``: ``task_digests``;
    ``trunk``: ``trunk_digests`` (a from-scratch run leaves the weights out)."""
    import hashlib
    method, init, seed = spec
    if init != "pretrained":
        trunk = {k: v for k, v in trunk.items() if k != "weights"}
    payload = {"version": version, "settings": run_settings(cfg, method, kind), "method": method, "init": init,
               "seed": seed, "max_len": max_len, "device": device, "threads": threads if device == "cpu" else None,
               "task": task, "trunk": trunk}
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:16]


def seal(run_dir: Path) -> None:
    """Write ``RUN_FILES`` into a finished run folder: what a resumed stage, or the stage before it publishes,
    checks the run against (``run_damage``). Its files may be hard links shared with other outputs, so they can
    change after the run finished."""
    files = {p.relative_to(run_dir).as_posix(): file_digest(p) for p in sorted(run_dir.rglob("*"))
             if p.is_file() and p.name != RUN_FILES}
    atomic_write_text(run_dir / RUN_FILES, json.dumps(files, indent=1))


def run_damage(run_dir: Path, key: str) -> str:
    """Why a finished run folder cannot be kept as the run of ``key`` ("" when it can): it holds another key
    (other settings, inputs or thread count), or its files are not those ``seal`` listed."""
    try:
        found = (run_dir / RUN_KEY).read_text().strip()
    except OSError:
        return f"it has no readable {RUN_KEY}"
    try:
        listed = json.loads((run_dir / RUN_FILES).read_text())
    except (OSError, ValueError):
        listed = None
    if not isinstance(listed, dict) or not all(isinstance(v, str) for v in listed.values()):
        return f"it has no readable {RUN_FILES}"
    if found != key:
        return f"it was trained under another run key ({found}, now {key})"
    for rel, digest in listed.items():
        try:
            if file_digest(run_dir / rel) != digest:
                return f"{rel} changed after the run finished"
        except OSError:
            return f"{rel} is missing"
    return ""


class Donors:
    """The published finetune outputs (``stage_root``: ``<work>/finetune``), searched for a run folder holding a
    given key. This stage's own earlier output is among them: a forced rerun takes no donor at all, so it is
    one only when it was found damaged, and its intact runs are kept rather than trained again."""

    def __init__(self, stage_root: Path) -> None:
        self.folders = sorted(p for p in stage_root.iterdir() if p.is_dir() and "." not in p.name
                              ) if stage_root.is_dir() else []
        self.checked: dict[Path, Any] = {}  # folder -> its manifest, None when damaged
        self.keys: dict[Path, str | None] = {}  # run folder -> the key it holds (None: none)
        self.damaged: list[str] = []  # "<folder> <task> <run>": the matches of a run not reused, all damaged

    def holds(self, task: str, name: str, key: str) -> list[Path]:
        """The run folders of the earlier outputs that were trained under ``key`` (not checked)."""
        found = []
        for folder in self.folders:
            run_dir = folder / "runs" / task / name
            if run_dir not in self.keys:
                try:
                    self.keys[run_dir] = (run_dir / RUN_KEY).read_text().strip()
                except OSError:
                    self.keys[run_dir] = None
            if self.keys[run_dir] == key:
                found.append(run_dir)
        return found

    def find(self, task: str, name: str, key: str) -> Path | None:
        """A run folder trained under ``key`` whose files match its output's manifest by digest. The rest of that
        output may be damaged (a file of another run deleted): the run's own files and reports decide."""
        damaged = []
        for run_dir in self.holds(task, name, key):
            folder = run_dir.parents[2]
            if folder not in self.checked:
                self.checked[folder] = validate(folder)[0] or read_manifest(folder)
            manifest = self.checked[folder]
            if manifest is not None and _intact(manifest, f"runs/{task}/{name}/", f"reports/{task}/{name}."):
                return run_dir
            damaged.append(f"{folder.name} {task} {name}")
        self.damaged += damaged
        return None


def _intact(manifest: Any, *prefixes: str) -> bool:
    """The donor's files under ``prefixes`` hold what its manifest lists (their digests, not only sizes: a run is
    small, and a same-size corruption would otherwise be linked into every output that reuses it)."""
    files = {rel: info for rel, info in manifest.files.items() if rel.startswith(prefixes)}
    if f"{prefixes[0]}result.json" not in files:
        return False
    try:
        if not all(file_digest(manifest.path / rel) == info["digest"] for rel, info in files.items()):
            return False
        seal = files.get(prefixes[0] + RUN_FILES)  # (a run published before run folders were sealed has none)
        listed = json.loads((manifest.path / (prefixes[0] + RUN_FILES)).read_text()) if seal else {}
    except (OSError, ValueError):
        return False
    if not isinstance(listed, dict):
        return False
    # The manifest agrees with the run's seal: a file that changed between the seal and publishing (the window
    # after the stage's own check) would otherwise be in the manifest as it is, damaged.
    return all(files.get(prefixes[0] + rel, {}).get("digest") == digest for rel, digest in listed.items())


def _link_or_copy(src: str, dst: str) -> None:
    """A hard link (published files are never written in place) or, across file systems, a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def adopt(run_dir: Path, out: Path, task: str, name: str, report_names: list[str]) -> dict[str, Any]:
    """Bring the donor's ``run_dir`` into this stage's ``out`` as ``runs/<task>/<name>``: its reports first, then
    the run folder renamed into place, as a trained run is (the folder's result.json marks it done)."""
    donor_reports = run_dir.parents[2] / "reports" / task
    for rel in report_names:
        if (donor_reports / rel).is_file():
            atomic_output(out / "reports" / task / rel, lambda tmp, src=donor_reports / rel: shutil.copyfile(src, tmp))
    dst = out / "runs" / task / name
    tmp = dst.with_name(f".{name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(run_dir, tmp, copy_function=_link_or_copy)
    if not (tmp / RUN_FILES).is_file():  # a run published before run folders were sealed (checked just now)
        seal(tmp)
    shutil.rmtree(dst, ignore_errors=True)
    os.replace(tmp, dst)
    return json.loads((dst / "result.json").read_text())


__all__ = ["RUN_KEY", "RUN_FILES", "seal", "run_damage", "run_settings", "task_digests", "trunk_digests", "run_key",
           "Donors", "adopt"]
