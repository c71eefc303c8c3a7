"""Content-addressed stage outputs: keys, manifests, atomic publication and validation.

A stage's output lives in ``<work>/<stage>/<key>/`` and exists only if its ``manifest.json`` is valid
(every listed file present with its recorded size). Work in progress goes to ``<key>.partial/``, which
survives a killed run so that the stage can resume at the shard where it stopped; the finished folder is
published with one ``os.replace``. The manifest is written last.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

MANIFEST = "manifest.json"
KEY_LEN = 16


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def stage_key(stage: str, version: str, config: Any, inputs: dict[str, str]) -> str:
    """Merkle-style key: the stage, its code VERSION, its validated config and its inputs' keys/digests."""
    payload = canonical_json({"stage": stage, "version": version, "config": config, "inputs": inputs})
    return hashlib.sha256(payload.encode()).hexdigest()[:KEY_LEN]


def files_fingerprint(paths: Iterable[Path]) -> str:
    """What these files hold now, in order (their content digests; "missing" for an absent one), for the key
    of a stage that reads files outside the store: an edited file gives a new key, so a rebuild, and a file
    only touched or copied back unchanged gives the same key (the config names the paths)."""
    h = hashlib.sha256()
    for p in paths:
        try:
            h.update(f"{DIGESTS.digest(p)}\n".encode())
        except FileNotFoundError:
            h.update(f"{p}|missing\n".encode())
    return h.hexdigest()[:16]


class DigestCache:
    """Content digests of outside files (corpus, task files, models), kept by what ``stat`` says of each file
    (size, mtime, ctime, inode: a rewrite that keeps the mtime still changes the ctime), in memory and, once
    ``use`` names it, in a JSON file, so that planning reads a large file again only when it changed."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self.entries: dict[str, list] = {}
        self.dirty = False

    def use(self, path: Path) -> None:
        if path == self.path:
            return
        self.path, self.dirty = path, False
        try:
            self.entries = json.loads(path.read_text())
        except (OSError, ValueError):
            self.entries = {}
        if not isinstance(self.entries, dict):
            self.entries = {}

    def digest(self, path: Path) -> str:
        return self.derived(path, "", file_digest)

    def derived(self, path: Path, tag: str, fn: Callable[[Path], Any]) -> Any:
        """``fn(path)`` (a JSON value) for what the file holds now, computed again only when its stat changed:
        the content digest (tag ""), or another fact read from the file (a codec mark, a check's verdict)."""
        st = path.stat()
        name, seen = str(path.resolve()) + (f"|{tag}" if tag else ""), [st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                                                                         st.st_ino]
        entry = self.entries.get(name)
        if not (isinstance(entry, list) and entry[:-1] == seen):
            entry = self.entries[name] = [*seen, fn(path)]
            self.dirty = True
        return entry[-1]

    def save(self) -> None:
        if self.dirty and self.path is not None:
            try:
                atomic_write_text(self.path, json.dumps(self.entries))
                self.dirty = False
            except OSError:  # a read-only store: the digests are computed again next time
                pass


DIGESTS = DigestCache()


def file_digest(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class Manifest:
    stage: str
    key: str
    version: str
    config: Any
    inputs: dict[str, str]
    files: dict[str, dict[str, Any]]
    stats: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    created: float = 0.0
    seconds: float = 0.0
    sources: dict[str, str] = field(default_factory=dict)  # role -> the upstream folder (key) read; ``inputs``
    # holds the upstreams' data keys, which a report-only rebuild upstream leaves unchanged (plan.REPORT_ONLY)
    path: Path | None = None  # the published folder; not serialised

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "path"}

    @classmethod
    def from_json(cls, data: dict[str, Any], path: Path | None = None) -> "Manifest":
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data and k != "path"}
        return cls(**fields, path=path)

    def file(self, rel: str) -> Path:
        assert self.path is not None, "manifest not bound to a folder"
        return self.path / rel


def stage_dir(work: Path, stage: str, key: str) -> Path:
    return work / stage / key


def read_manifest(folder: Path) -> Manifest | None:
    return _read_manifest(folder)[0]


def _read_manifest(folder: Path) -> tuple[Manifest | None, str]:
    try:
        data = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None, f"no valid {MANIFEST} in {folder}"
    why = _not_a_manifest(data)
    if why:  # JSON of another shape (an edit, another tool's file): the folder holds no output
        return None, f"{MANIFEST} in {folder} is not a manifest ({why})"
    return Manifest.from_json(data, path=folder), ""


def _not_a_manifest(data: Any) -> str:
    if not isinstance(data, dict):
        return f"a {type(data).__name__}, not an object"
    kinds = {"stage": str, "key": str, "version": str, "inputs": dict, "files": dict}
    for name, kind in kinds.items():
        if not isinstance(data.get(name), kind):
            return f"{name!r} missing or not a {kind.__name__}"
    for rel, info in data["files"].items():
        if not (isinstance(info, dict) and isinstance(info.get("size"), int) and isinstance(info.get("digest"), str)):
            return f"file {rel!r} has no size and digest"
    for name in ("stats", "sources"):
        if not isinstance(data.get(name, {}), dict):
            return f"{name!r} is not an object"
    return ""


def listed_files(folder: Path, pattern: str) -> list[Path]:
    """The files of ``folder`` matching a glob ``pattern`` (relative, ``*`` within one path part), sorted: those
    its manifest lists when the folder is a published output (a file put there afterwards is never read), else
    those on disk (an output being written, or a plain folder the training entry point is given)."""
    m = read_manifest(folder)
    if m is None:
        return sorted(p for p in folder.glob(pattern) if p.is_file())
    parts = pattern.split("/")
    return [m.file(rel) for rel in sorted(m.files)
            if len(rel.split("/")) == len(parts) and all(map(fnmatch.fnmatchcase, rel.split("/"), parts))]


def shard_files(folder: Path, sub: str, suffix: str) -> list[Path]:
    """The ``part-*<suffix>`` shards under ``folder/sub`` (``listed_files``)."""
    return listed_files(folder, f"{sub}/part-*{suffix}")


def output_files(folder: Path) -> list[tuple[str, Path]]:
    """(relative path, path) of the files an output folder holds as its own, sorted: every file but dot files
    (temporaries, Prefect's cache record) and the manifest. What publish lists, and what a partial folder keeps."""
    return [(p.relative_to(folder).as_posix(), p) for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith(".") and p.relative_to(folder).as_posix() != MANIFEST]


def validate(folder: Path, deep: bool = False) -> tuple[Manifest | None, str]:
    """Return (manifest, "") if the folder holds a complete output, else (None, the reason)."""
    m, why = _read_manifest(folder)
    if m is None:
        return None, why
    if folder.name != m.key:
        return None, f"manifest key {m.key} does not match folder {folder.name}"
    for rel, info in m.files.items():
        p = folder / rel
        try:
            size = p.stat().st_size
        except OSError:
            return None, f"missing file {rel}"
        if size != info["size"]:
            return None, f"size of {rel} is {size}, manifest says {info['size']}"
        if deep and file_digest(p) != info["digest"]:
            return None, f"digest of {rel} does not match the manifest"
    if deep:  # publish lists every output file: one it did not list came later (or left the list)
        for rel, _ in output_files(folder):
            if rel not in m.files:
                return None, f"file {rel} is not in the manifest"
    return m, ""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_output(path: Path, write: Callable[[Path], Any]) -> Any:
    """Call ``write(tmp_path)`` and rename the result onto ``path``: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        result = write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return result


class Workspace:
    """The ``<key>.partial`` folder a stage writes into, and its publication as ``<key>``."""

    def __init__(self, work: Path, stage: str, key: str):
        self.final = stage_dir(work, stage, key)
        self.partial = self.final.with_name(f"{key}.partial")
        self.stage, self.key = stage, key

    def open(self, fresh: bool) -> Path:
        """Create the partial folder; keep what a killed run left there unless ``fresh``."""
        if fresh and self.partial.exists():
            shutil.rmtree(self.partial)
        self.partial.mkdir(parents=True, exist_ok=True)
        return self.partial

    def publish(self, version: str, config: Any, inputs: dict[str, str], stats: dict[str, Any],
                run_id: str | None, seconds: float, sources: dict[str, str] | None = None) -> Manifest:
        files = {rel: {"size": p.stat().st_size, "digest": file_digest(p)} for rel, p in output_files(self.partial)}
        m = Manifest(stage=self.stage, key=self.key, version=version, config=config, inputs=inputs,
                     files=files, stats=stats, run_id=run_id, created=time.time(), seconds=seconds,
                     sources=dict(sources or {}))
        for p in self.partial.rglob(".*.tmp-*"):
            p.unlink()
        atomic_write_text(self.partial / MANIFEST, json.dumps(m.to_json(), indent=1, default=str))
        trash = None
        if self.final.exists():  # an invalid or forced-over older output: moved aside, deleted once published
            trash = self.final.with_name(f"{self.key}.old-{os.getpid()}-{time.time_ns()}")
            os.replace(self.final, trash)
        os.replace(self.partial, self.final)
        if trash is not None:  # (thousands of small files can take seconds; a crash here leaves gc an .old-*)
            shutil.rmtree(trash, ignore_errors=True)
        m.path = self.final
        return m
