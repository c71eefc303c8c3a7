"""The stage contract: what a stage function receives and returns.

A stage is a plain function ``run(cfg, ctx) -> stats`` in ``pipeline/<stage>/`` with a module constant
``VERSION`` (bump it on any change that alters the output). It knows nothing of Prefect or MLflow:

- ``cfg`` is the stage's validated config section (a frozen dataclass);
- ``ctx.out`` is the folder to write into. It persists across a killed run (it is ``<key>.partial``),
  so a stage that works in shards skips the shard files already there (``ctx.shard_done``) and
  writes each new one atomically (``ctx.write_shard``). Everything in it is published at the end;
- ``ctx.extra[section]`` holds the other config sections the stage reads (e.g. ``tasks``); they are
  part of its key;
- ``ctx.inputs[name]`` is the manifest of an upstream stage (``.path`` is its folder, ``.stats``
  its figures);
- ``ctx.tracker`` logs step metrics (buffered), params and artifacts, or does nothing when tracking is
  off. Reports (JSON, samples, PNG plots) written under ``ctx.reports`` are logged as artifacts by the
  runner after the stage returns;
- the returned dict holds the stage's figures: numbers become MLflow metrics, everything goes into the
  manifest's ``stats``.
"""
from __future__ import annotations

import json
import logging
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pipeline.progress import Progress
from pipeline.store import Manifest, atomic_output, atomic_write_text
from pipeline.tracking import NullTracker, Tracker


@dataclass
class StageContext:
    name: str
    key: str
    out: Path
    inputs: dict[str, Manifest] = field(default_factory=dict)
    tracker: Tracker = field(default_factory=NullTracker)
    workers: int = 1
    root: Path = Path(".")  # the project folder (holds data/ and mlruns/)
    work: Path = Path("data/work")  # the stage store; a stage may keep a private cache under work/_cache
    extra: dict[str, Any] = field(default_factory=dict)  # other config sections the stage reads
    fail_after_shards: int | None = None  # test hook: simulate a crash after N new shards
    fresh: bool = False  # a forced rerun: start over, and take nothing from other outputs (finetune's runs)

    def __post_init__(self) -> None:
        self.log = logging.getLogger(f"pipeline.{self.name}")
        self._new_shards = 0

    @property
    def reports(self) -> Path:
        p = self.out / "reports"
        p.mkdir(parents=True, exist_ok=True)
        return p

    def input(self, name: str) -> Manifest:
        if name not in self.inputs:
            raise KeyError(f"stage {self.name} has no input {name!r}; it has {sorted(self.inputs)}")
        return self.inputs[name]

    def shard_done(self, rel: str) -> bool:
        """Whether a resumable unit is written. Writes are atomic, so a file there is whole unless something
        else damaged it: a Parquet or Arrow shard without its format's magic bytes is written again, not
        trusted (it would fail every rerun, or be published)."""
        path = self.out / rel
        if not path.exists():
            return False
        if not _looks_whole(path):
            self.log.warning("%s: %s, kept from an interrupted run, is damaged: written again", self.name, rel)
            path.unlink()
            return False
        return True

    def write_shard(self, rel: str, write: Callable[[Path], Any]) -> Any:
        """Write one resumable unit atomically; a crash leaves either the whole file or none."""
        result = atomic_output(self.out / rel, write)
        self._new_shards += 1
        if self.fail_after_shards is not None and self._new_shards >= self.fail_after_shards:
            raise InjectedFailure(f"{self.name}: injected failure after {self._new_shards} shard(s)")
        return result

    def write_report(self, name: str, obj: Any) -> Path:
        path = self.reports / name
        text = obj if isinstance(obj, str) else json.dumps(json_safe(obj), indent=1, ensure_ascii=False, default=str)
        atomic_write_text(path, text)
        return path

    def progress(self, total: int | None = None, unit: str = "items", label: str | None = None,
                 start: int = 0) -> Progress:
        """``start``: what a resumed run finds done (counted toward the total, not in the rate)."""
        return Progress(label or self.name, total=total, unit=unit, start=start)

    def note(self, message: str) -> None:
        """A line on stderr, where progress goes, before a step that reports no progress of its own (training a
        tokenizer, building an index), so that a silent pause says what it is."""
        print(f"[{self.name}] {message}", file=sys.stderr, flush=True)


class Diverged(ValueError):
    """A training loss became NaN or infinite: the recipe's fault (a learning rate too high, no warmup or
    clipping), not a bug; nothing is published (the CLI prints the message alone)."""


class InputGone(FileNotFoundError):
    """A stage's input lost a file while the stage ran (removed by hand or by another tool): not a bug; the next
    run rebuilds the input (the CLI prints the message alone)."""


class InputChanged(InputGone):
    """A file outside the store that a stage's key holds (a corpus or task file, a reused model) changed between
    the run's planning and the stage's reading it: the output would not match its key; nothing is published."""


def json_safe(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float as None: strict JSON has no NaN (Python writes a bare ``NaN``,
    which other parsers reject)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


MAGIC = {".parquet": (b"PAR1", b"PAR1"), ".arrow": (b"ARROW1", b"ARROW1")}  # at the start and the end


def _looks_whole(path: Path) -> bool:
    head, tail = MAGIC.get(path.suffix, (b"", b""))
    if not head:
        return True
    with open(path, "rb") as f:
        start = f.read(len(head))
        size = f.seek(0, 2)
        f.seek(max(0, size - len(tail)))
        return start == head and size >= len(head) + len(tail) and f.read() == tail


class InjectedFailure(RuntimeError):
    """Raised by the ``fail_after_shards`` test hook."""
