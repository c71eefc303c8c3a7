"""Experiment tracking: the only module that imports mlflow, and only lazily.

Stages and the trainer see a ``Tracker`` (``NullTracker`` when MLflow is missing, unreachable or
switched off). ``MlflowSession`` owns one parent run per ``lmforge run`` and one child run per stage,
talking to ``MlflowClient`` with explicit run ids (the fluent API's active run is thread-local, and
Prefect may run tasks on worker threads). Step metrics are buffered and sent with ``log_batch``:
one SQL round trip per flush, never one per value.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import socket
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Mapping, Protocol

log = logging.getLogger("pipeline.tracking")
EXPERIMENT = "lmforge"
_FLUSH_EVERY = 500


class Tracker(Protocol):
    run_id: str | None

    def log_params(self, params: Mapping[str, Any]) -> None: ...
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None: ...
    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None: ...
    def set_tags(self, tags: Mapping[str, str]) -> None: ...
    def flush(self) -> None: ...


class NullTracker:
    run_id: str | None = None

    def log_params(self, params: Mapping[str, Any]) -> None: pass
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None: pass
    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None: pass
    def set_tags(self, tags: Mapping[str, str]) -> None: pass
    def flush(self) -> None: pass


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def metric_name(key: str) -> str:
    """MLflow allows alphanumerics, ``_ - . : /`` and spaces in names; map anything else."""
    return _BAD_NAME.sub("_", key.replace("+", "plus").replace("<", "lt").replace(">", "gt"))


_BAD_NAME = re.compile(r"[^A-Za-z0-9_\-. :/]")


def param_names(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Flat config keys as MLflow parameter names: mapped like metric names (a key can hold a user's source
    name, "rules_by_source.notes+2024"), at most 250 characters, and distinct: a name two keys map to gets a
    short hash of the original key."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        name = metric_name(key)[:250]
        if name in out:
            name = f"{name[:240]}-{hashlib.blake2b(key.encode(), digest_size=4).hexdigest()}"
        out[name] = value
    return out


PARAM_CHARS = 6000  # MLflow's limit on a parameter value


def param_value(v: Any) -> str:
    """A config value as MLflow shows it: JSON for lists, mappings, booleans and null (not Python's repr), cut at
    MLflow's limit with a marker that says so (the whole config is the parent run's config.json)."""
    structured = isinstance(v, (list, tuple, dict, bool)) or v is None
    text = json.dumps(v, ensure_ascii=False, default=str) if structured else str(v)
    if len(text) <= PARAM_CHARS:
        return text
    marker = f" …[{len(text):,} characters; whole in the parent run's config.json]"
    return text[:PARAM_CHARS - len(marker)] + marker


def numeric_metrics(stats: Mapping[str, Any]) -> dict[str, float]:
    """The numbers in a (nested) stats dict, as flat metric names."""
    return {metric_name(k): float(v) for k, v in flatten(stats).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")}


class MlflowRun:
    """A Tracker bound to one MLflow run id."""

    def __init__(self, client: Any, run_id: str):
        self.client, self.run_id = client, run_id
        self._buffer: list[Any] = []
        self._last: dict[str, tuple[int, float]] = {}  # per metric: its last step and value

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param
        flat = [Param(k, param_value(v)) for k, v in param_names(flatten(params)).items()]
        for i in range(0, len(flat), 100):
            self.client.log_batch(self.run_id, params=flat[i:i + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """``step`` None: a final figure, at the last step of that metric's curve when it has one (at 0 it
        would draw the curve back to the start; the curve's own last value is not logged twice), else at 0."""
        from mlflow.entities import Metric
        ts = int(time.time() * 1000)
        for k, v in metrics.items():
            if v != v or abs(v) == float("inf"):
                continue
            name, v = metric_name(k), float(v)
            last_step, last_value = self._last.get(name, (0, None))
            if step is None and v == last_value:
                continue
            at = last_step if step is None else step
            self._last[name] = (max(at, last_step), v)
            self._buffer.append(Metric(name, v, ts, at))
        if len(self._buffer) >= _FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        for i in range(0, len(self._buffer), 1000):
            self.client.log_batch(self.run_id, metrics=self._buffer[i:i + 1000])
        self._buffer = []

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """A file, or a folder's contents, under ``artifact_path``. An artifact store on a local disk gets hard
        links (the files logged are published outputs, never written in place): a checkpoint logged by every
        output that reuses it takes its disk space once. Elsewhere (a server, another file system), a copy."""
        path = Path(path)
        if not path.exists():
            return
        local = self._local_artifacts
        if local is None:
            if path.is_dir():
                self.client.log_artifacts(self.run_id, str(path), artifact_path)
            else:
                self.client.log_artifact(self.run_id, str(path), artifact_path)
            return
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            rel = f.relative_to(path) if path.is_dir() else Path(f.name)
            try:
                _link_into(f, (local / artifact_path if artifact_path else local) / rel)
            except OSError:  # another file system, links not allowed: MLflow copies this file
                parent = "/".join(x for x in (artifact_path, rel.parent.as_posix()) if x and x != ".")
                self.client.log_artifact(self.run_id, str(f), parent or None)

    @functools.cached_property
    def _local_artifacts(self) -> Path | None:
        """The run's artifact folder when the artifact store is a local folder (``file:`` URI or a plain path)."""
        from urllib.parse import urlparse

        from mlflow.utils.file_utils import local_file_uri_to_path
        uri = self.client.get_run(self.run_id).info.artifact_uri
        scheme = urlparse(uri).scheme
        local = scheme == "file" or not scheme or len(scheme) == 1  # (a Windows drive letter)
        return Path(local_file_uri_to_path(uri)) if local else None

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag
        if not tags:
            return
        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def finish(self, status: str = "FINISHED") -> None:
        self.flush()
        self.client.set_terminated(self.run_id, status=status)


def _link_into(src: Path, dst: Path) -> None:
    """``dst`` becomes a hard link to ``src``, replacing what was there (a temporary name, then a rename)."""
    from pipeline.store import atomic_output
    if dst.exists() and os.path.samefile(src, dst):  # logged again
        return
    atomic_output(dst, lambda tmp: os.link(src, tmp))


def default_uri(root: Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(root / 'mlruns' / 'mlflow.db').resolve()}"


def _owner() -> dict[str, str]:
    return {"lmforge.host": socket.gethostname(), "lmforge.pid": str(os.getpid())}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _drop_empty_default(client: Any) -> None:
    """A new store gets MLflow's "Default" experiment, its artifacts under the *current* folder's mlruns/0 (not
    the project's): when it holds no run, it is deleted (restorable, as any MLflow deletion), so that the UI shows
    lmforge's experiment alone and nothing points outside the project."""
    from mlflow.entities import ViewType
    try:
        default = client.get_experiment("0")
        if default.lifecycle_stage == "active" and not client.search_runs(["0"], max_results=1,
                                                                          run_view_type=ViewType.ALL):
            client.delete_experiment("0")
    except Exception:  # (another store's rules: it stays)
        pass


class MlflowSession:
    """Parent/child runs for one pipeline invocation; ``enabled`` is False when MLflow is unusable."""

    def __init__(self, root: Path, enabled: bool = True, experiment: str = EXPERIMENT):
        self.root, self.enabled, self.client, self.experiment_id = root, enabled, None, None
        if not enabled:
            return
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        try:
            import warnings
            warnings.filterwarnings("ignore", category=DeprecationWarning, module="mlflow")
            from mlflow.tracking import MlflowClient
            uri = default_uri(root)
            if uri.startswith(("http://", "https://")):
                _probe(uri)
            db = Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None
            if db is not None:
                db.parent.mkdir(parents=True, exist_ok=True)
            _quiet_alembic()
            # runs started together raced on creating the store and the experiment ("duplicate column name"):
            # one process at a time (given up after 120 s: a race guard is not worth a hang)
            from pipeline import locks
            with locks.held(db.with_name(".lmforge-setup.lock"), timeout=120.0) if db else nullcontext():
                self.client = MlflowClient(tracking_uri=uri)
                self.uri = uri
                exp = self.client.get_experiment_by_name(experiment)
                if exp is None:
                    artifacts = (root / "mlruns" / "artifacts").resolve().as_uri()
                    self.experiment_id = self.client.create_experiment(experiment, artifact_location=artifacts)
                    if db is not None:
                        _drop_empty_default(self.client)
                else:
                    self.experiment_id = exp.experiment_id
        except Exception as e:  # missing package, unreachable server, broken store: run untracked
            print(f"lmforge: tracking is off ({type(e).__name__}: {str(e).splitlines()[0][:200]})")
            self.enabled, self.client = False, None

    def start(self, name: str, tags: Mapping[str, str], parent: str | None = None) -> MlflowRun | NullTracker:
        if not self.enabled:
            return NullTracker()
        tags = {**tags, **_owner()}
        if parent:
            tags["mlflow.parentRunId"] = parent
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        return MlflowRun(self.client, run.info.run_id)

    def close_orphans(self) -> int:
        """Mark KILLED the runs still RUNNING whose process, on this machine, is gone (a ``kill -9`` or a power cut
        ends a run with no chance to close it); returns how many. A run of a live process is left alone."""
        if not self.enabled:
            return 0
        me = _owner()
        runs = self.client.search_runs([self.experiment_id], filter_string="attributes.status = 'RUNNING' and "
                                       f"tags.`lmforge.host` = '{me['lmforge.host']}'", max_results=1000)
        closed = 0
        for run in runs:
            pid = run.data.tags.get("lmforge.pid", "")
            # our own pid too: no run of this session has started yet, so one tagged with it is a dead process's
            # (containers hand the same low pids out again)
            if pid.isdigit() and (int(pid) == os.getpid() or not _alive(int(pid))):
                # it ended at its last sign of life (its latest metric), not now: its duration stays true
                last = max((m.timestamp for m in getattr(run.data, "_metric_objs", ())), default=None)
                why = "its process was gone when a later run started"
                self.client.set_tag(run.info.run_id, "lmforge.ended", why + (
                    "" if last else " (its end time is when it was found)" if run.data.metrics else
                    " (it had logged no metric: its end time is when it was found)"))
                self.client.set_terminated(run.info.run_id, "KILLED", end_time=last)
                closed += 1
        return closed

    def find_stage_run(self, stage: str, key: str) -> str | None:
        """The finished, executed (not cached) run that built ``stage``/``key``."""
        if not self.enabled:
            return None
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.stage = '{stage}' and tags.`stage.key` = '{key}' and tags.cached = 'false' "
                          "and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"], max_results=1)
        return runs[0].info.run_id if runs else None

    def register_model(self, name: str, run: MlflowRun, artifact_path: str, tags: Mapping[str, str]) -> None:
        """Register a logged checkpoint folder in the model registry, with lineage tags."""
        if not self.enabled or not isinstance(run, MlflowRun):
            return
        from mlflow.exceptions import MlflowException
        try:
            self.client.get_registered_model(name)
        except MlflowException:
            self.client.create_registered_model(name)
        source = f"runs:/{run.run_id}/{artifact_path}"
        self.client.create_model_version(name, source, run_id=run.run_id, tags=dict(tags))


def _probe(uri: str, timeout: float = 5.0) -> None:
    """Fail fast on an unreachable server (MLflow's client would retry for minutes)."""
    import urllib.request
    with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as r:
        if r.status != 200:
            raise ConnectionError(f"{uri} answered {r.status} on /health")


def _quiet_alembic() -> None:
    for name in ("alembic", "alembic.runtime.migration", "mlflow.store.db.utils"):
        logging.getLogger(name).setLevel(logging.WARNING)
