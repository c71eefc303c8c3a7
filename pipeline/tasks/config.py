"""The ``tasks`` config section: the labelled tasks that finetune trains on and evaluate scores.

A task is either read from files (``source: files``) or derived from the default corpus, the Python
standard library (``source: stdlib_area`` / ``stdlib_names``; see ``pipeline.tasks.stdlib_tasks``),
so the default run needs no download. The section is passed to decontaminate, finetune and evaluate
(``ctx.extra["tasks"]``), so changing a task changes those stages' keys; so does editing a task's
files (``fingerprint``).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

from pipeline.configtypes import ConfigError, bounded, config_path, existing_file, non_default, to_dict

TaskKind = Literal["classification", "pair_classification", "tagging"]
TaskSource = Literal["files", "stdlib_area", "stdlib_names"]
FileFormat = Literal["auto", "csv", "tsv", "jsonl", "conll"]
TagScheme = Literal["auto", "BIO", "BIOES", "BMES"]
SPLITS = ("train", "validation", "test")

# The default areas of ``stdlib_area``: the stdlib packages with many modules and docstrings, so that
# whole modules can be held out for test in every area (counts on CPython 3.11: docstrings / modules):
# tkinter 750/14, asyncio 317/33, email 281/29, importlib 230/24, xml 212/22, unittest 158/13,
# multiprocessing 146/23, and "net" = http + urllib + wsgiref + xmlrpc 325/21. Single-module areas
# (logging, mailbox, turtle...) are left out: a module split cannot hold any of them out.
DEFAULT_AREAS: dict[str, list[str]] = {
    "asyncio": ["asyncio"],
    "email": ["email"],
    "importlib": ["importlib"],
    "multiprocessing": ["multiprocessing"],
    "net": ["http", "urllib", "wsgiref", "xmlrpc"],
    "tkinter": ["tkinter"],
    "unittest": ["unittest"],
    "xml": ["xml"],
}


@dataclass(frozen=True)
class TaskConfig:
    """One task.

    ``kind``: ``classification`` (one text → one label), ``pair_classification`` (two texts, joined with
    the tokenizer's ``<sep>``), ``tagging`` (one tag per word).

    Files (``source: files``): ``train`` is required; without ``validation`` / ``test`` those splits are
    cut from train, deterministically from ``split_seed`` and each row's text (not its line: a renamed file or an
    inserted row moves no other row), in ``val_fraction`` / ``test_fraction``.
    ``format: auto`` picks by suffix (.csv, .tsv, .jsonl/.json, .conll/.txt/other → conll for tagging).
    CSV/TSV: ``text_field`` / ``text_pair_field`` / ``label_field`` are column names, or 0-based column
    indexes when ``header`` is false. JSON Lines: keys. CoNLL: whitespace-separated columns, the word in
    ``token_column`` and the tag in ``tag_column`` (negative counts from the end), sentences end at
    blank lines and ``-DOCSTART-`` lines.

    ``labels``: the label list (its order is the class ids); rows with another label are dropped as
    ``unknown_label``. None: the sorted labels seen in train (for tagging, every tag the scheme allows
    for the entity types seen). ``scheme``: the tagging scheme, ``auto`` = detected from train's tags
    (S-/E- → BIOES, M- → BMES, else BIO).

    ``max_train`` / ``max_eval``: keep a deterministic sample (by a hash of each example's origin seeded with
    ``split_seed``, kept in file order) of train / of validation and test (the tiny preset uses small slices).
    ``areas``: label → stdlib top-level packages, for ``stdlib_area``.
    """
    name: str = "stdlib_area"
    kind: TaskKind = "classification"
    source: TaskSource = "stdlib_area"
    train: str | None = None
    validation: str | None = None
    test: str | None = None
    format: FileFormat = "auto"
    header: bool = True
    text_field: str = "text"
    text_pair_field: str = "text_pair"
    label_field: str = "label"
    token_column: int = 0
    tag_column: int = -1
    scheme: TagScheme = "auto"
    labels: list[str] | None = None
    split_seed: int = bounded(0, ge=0)  # (hashed as text: any size)
    val_fraction: float = bounded(0.1, ge=0.0, lt=1.0)
    test_fraction: float = bounded(0.1, ge=0.0, lt=1.0)
    max_train: int | None = bounded(None, ge=1)
    max_eval: int | None = bounded(None, ge=1)
    areas: dict[str, list[str]] = field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_AREAS.items()})

    def __post_init__(self) -> None:
        where = f"tasks.tasks[{self.name}]"
        if not self.name or any(c in self.name for c in "/\\ .:"):
            raise ConfigError(f"tasks.tasks.name: got {self.name!r}, allowed: a non-empty name without "
                              "'/', '\\', '.', ':' or spaces")
        paths = [p for p in (self.train, self.validation, self.test) if p]
        if self.source == "files" and not self.train:
            raise ConfigError(f"{where}.train: a files task needs a train file")
        if self.source != "files" and paths:
            raise ConfigError(f"{where}: a {self.source} task takes no train/validation/test files")
        need = {"stdlib_area": "classification", "stdlib_names": "tagging"}.get(self.source)
        if need and self.kind != need:
            raise ConfigError(f"{where}.kind: got {self.kind!r}, allowed: {need!r} for source {self.source!r}")
        if self.format == "conll" and self.kind != "tagging":
            raise ConfigError(f"{where}.format: 'conll' files hold tagging tasks, got kind {self.kind!r}")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ConfigError(f"{where}: val_fraction + test_fraction = "
                              f"{self.val_fraction + self.test_fraction}, allowed: < 1")
        if self.labels is not None and len(set(self.labels)) != len(self.labels):
            raise ConfigError(f"{where}.labels: duplicate labels in {self.labels}")
        if self.labels is not None and self.kind == "tagging" and "O" not in self.labels:
            raise ConfigError(f"{where}.labels: got {self.labels}, allowed: a tag list that holds 'O' (the tag "
                              "of words outside any span, and of words cut off by truncation)")
        if self.labels is not None and self.kind != "tagging" and len(self.labels) < 2:
            raise ConfigError(f"{where}.labels: got {self.labels}, allowed: at least 2 labels (or none: read from "
                              "the data)")
        for split, fraction in (("test", self.test_fraction), ("validation", self.val_fraction)):
            if self.source == "files" and not self.file(split) and fraction == 0:
                key = "val_fraction" if split == "validation" else "test_fraction"
                raise ConfigError(f"{where}.{key}: got 0 without a {split} file, allowed: > 0 (the {split} split "
                                  f"is cut from train) or a {split} file")
        if self.source == "stdlib_area" and len(self.areas) < 2:
            raise ConfigError(f"{where}.areas: got {len(self.areas)} area(s), allowed: at least 2")
        unread = ["format", "header", "text_field", "text_pair_field", "label_field", "token_column", "tag_column"] \
            if self.source != "files" else []
        unread += ["areas"] if self.source != "stdlib_area" else []
        unread += ["text_pair_field"] if self.kind != "pair_classification" else []
        for key in non_default(self, unread):  # set, it would change the task's key and rerun stages for nothing
            raise ConfigError(f"{where}.{key}: got {getattr(self, key)!r}, but a {self.source} "
                              f"{self.kind} task does not read it; allowed: leave it out")

    def file(self, split: str) -> str | None:
        return {"train": self.train, "validation": self.validation, "test": self.test}[split]


def default_tasks() -> list[TaskConfig]:
    """The two stdlib tasks, sampled so the default finetune stage takes minutes on 2 CPU cores
    (full data: ~1,800 / 280 / 300 area examples and ~1,640 / 280 / 270 names windows)."""
    return [
        TaskConfig(name="stdlib_area", kind="classification", source="stdlib_area", max_train=600, max_eval=200),
        TaskConfig(name="stdlib_names", kind="tagging", source="stdlib_names", scheme="BIO", max_train=600,
                   max_eval=200),
    ]


@dataclass(frozen=True)
class TasksConfig:
    """The fine-tuning tasks; defaults: the two tasks derived from the standard library."""
    tasks: list[TaskConfig] = field(default_factory=default_tasks)

    def __post_init__(self) -> None:
        names = [t.name for t in self.tasks]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"tasks.tasks: duplicate task name {dup[0]!r}; names must be unique")

    def get(self, name: str) -> TaskConfig:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(f"no task {name!r}; tasks: {', '.join(t.name for t in self.tasks)}")


def _needs_train(t: TaskConfig, splits: Sequence[str]) -> bool:
    """Whether the given splits' examples depend on the train file: train is among them, a split is cut from
    it, or a tagging scheme is detected from it (and rows of the other splits are checked against it)."""
    return ("train" in splits or any(not t.file(s) for s in splits)
            or (t.kind == "tagging" and t.scheme == "auto"))


# How a files task's rows become its splits (pipeline.tasks.load), for the keys of the stages that read one (the
# stdlib tasks' keys stay): "|files2": the validation / test cut and the max_train / max_eval samples by each
# row's text and copy number, not its file and line; labels from the (sampled) train rows when none are listed.
# "|files3": UTF-16 / UTF-32 files read by their byte-order mark, rows holding a NUL dropped, integer tags as ids
# into the labels, a .json array of objects read, a tagging train split without an entity refused.
FILES_VERSION = "|files3"
CUT_VERSION = "|cut2"  # 2: the copies of a text repeated in a train file all take its first copy's side of the cut


def split_files(t: TaskConfig, splits: Sequence[str] = SPLITS) -> list[str]:
    """The files the given splits of a files task depend on (``_needs_train``: train's too)."""
    if t.source != "files":
        return []
    return sorted({t.file(s) for s in splits if t.file(s)} | ({t.train} if _needs_train(t, splits) else set()))


def view(cfg: TasksConfig, splits: Sequence[str]) -> list[dict[str, Any]]:
    """The settings that decide the given splits' examples (for the key of a stage that reads only those, the
    decontaminate stage). For a files task whose splits do not depend on train (``_needs_train``): not train's
    file, the cut or ``max_train`` (and ``split_seed`` only samples them with ``max_eval``); editing a train
    file, or a fine-tuning cap, then rebuilds no pretraining corpus."""
    out = []
    for t in cfg.tasks:
        d = to_dict(t)
        if t.source == "files" and not _needs_train(t, splits):
            for k in ("train", "max_train", "val_fraction", "test_fraction"):
                d.pop(k)
            if t.max_eval is None:
                d.pop("split_seed")
        elif "train" not in splits:
            d.pop("max_train")  # it samples train after the cut: the other splits are the same
        out.append(d)
    return out


NAMES_VERSION = "|names2"  # 2: a stdlib_names window repeated elsewhere is dropped (duplicate_text), not in two
# splits; windows of 24 words, not 48 (most fit finetune.max_len)


def fingerprint(cfg: TasksConfig, root: Path, splits: Sequence[str] = SPLITS) -> str:
    """What the tasks' data is now, for the keys of the stages that read it: each task file's content digest
    (the files of ``splits`` only: ``split_files``), and for the tasks derived from the
    standard library, the Python they come from. Every task file a config names is checked here, at planning,
    before any stage runs: a missing one, or one whose first bytes do not fit the task, is a ConfigError."""
    from pipeline.ingest import stdlib
    from pipeline.store import files_fingerprint

    from pipeline.tasks.filecheck import check_file

    files = [(t, f"tasks.tasks[{t.name}].{split}", t.file(split))
             for t in cfg.tasks for split in SPLITS if t.file(split)]
    paths = [existing_file(root, f, key) for _, key, f in files]
    for (t, key, _), path in zip(files, paths):
        check_file(path, t, key)
    read = {config_path(root, f) for t in cfg.tasks for f in split_files(t, splits)}
    paths = sorted({p for p in paths if p in read})  # the files, in any order the tasks name them
    derived = stdlib.fingerprint() if any(t.source != "files" for t in cfg.tasks) else ""
    derived += NAMES_VERSION if any(t.source == "stdlib_names" for t in cfg.tasks) else ""
    loader = FILES_VERSION if any(t.source == "files" for t in cfg.tasks) else ""
    loader += CUT_VERSION if any(t.source == "files" and not (t.validation and t.test) for t in cfg.tasks) else ""
    return hashlib.sha256(f"{files_fingerprint(paths)}|{derived}{loader}".encode()).hexdigest()[:16]


__all__ = ["TaskConfig", "TasksConfig", "DEFAULT_AREAS", "SPLITS", "default_tasks", "fingerprint", "view",
           "split_files"]
