"""Execute one planned stage (or record a cached one), with tracking. No Prefect here.

The flow wraps ``execute`` in a Prefect task; tests and the plain entry points call it directly.
"""
from __future__ import annotations

import logging
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline import stages as registry
from pipeline.config import RunConfig
from pipeline.plan import PlannedStage, outside_files
from pipeline.stage import InputChanged, StageContext
from pipeline.store import Manifest, Workspace, output_files, read_manifest, stage_dir, validate
from pipeline.tracking import MlflowRun, MlflowSession, NullTracker, numeric_metrics

log = logging.getLogger("pipeline.runner")


def _inputs(ps: PlannedStage, by_name: dict[str, PlannedStage]) -> dict[str, Manifest]:
    out = {}
    for role, up in ps.input_stages.items():
        m, why = validate(by_name[up].path)
        if m is None:
            raise RuntimeError(f"stage {ps.name}: input {up}/{by_name[up].key} is not usable: {why}")
        out[role] = m
    return out


def input_tags(inputs: dict[str, str], sources: dict[str, str]) -> dict[str, str]:
    """``input.<role>``: the upstream folder read (``sources``, lineage), else the key (an outside file's)."""
    return {f"input.{role}": key for role, key in {**inputs, **sources}.items()}


def _tags(ps: PlannedStage, cached: bool, built_by: str | None = None,
          manifest: Manifest | None = None) -> dict[str, str]:
    """A stage run's tags; a cached stage's inputs are those its output was built from (its manifest's)."""
    tags = {"stage": ps.name, "stage.key": ps.key, "stage.version": ps.version, "cached": str(cached).lower(),
            "stage.path": str(ps.path)}
    tags.update(input_tags(manifest.inputs, manifest.sources) if manifest else input_tags(ps.inputs, ps.sources))
    if ps.data_key != ps.key:
        tags["stage.data_key"] = ps.data_key  # what downstream keys hold (a report-only setting differs)
    if built_by:
        tags["built_by"] = built_by
    return tags


def _say_why(ps: PlannedStage, out: Path) -> int:
    """Why the stage runs when it is not simply new (a damaged output, a forced rerun), and what it resumes."""
    if ps.reason and ps.reason != "not built yet":
        print(f"  {ps.name:<13} {ps.key}  running: {ps.reason}", file=sys.stderr, flush=True)
    kept = len(output_files(out))
    if kept:
        print(f"  {ps.name:<13} {ps.key}  resuming: {kept} file(s) kept from an interrupted run in {out}",
              file=sys.stderr, flush=True)
    return kept


def execute(ps: PlannedStage, cfg: RunConfig, plan: list[PlannedStage], root: Path, work: Path,
            session: MlflowSession | None, parent_id: str | None, fresh: bool,
            fail_after_shards: int | None = None) -> Manifest:
    """Run the stage into its partial folder (resuming unless ``fresh``), publish, and track it."""
    spec = registry.get(ps.name)
    module = spec.load()
    by_name = {p.name: p for p in plan}
    inputs = _inputs(ps, by_name)
    runs = {f"input.{role}.run": m.run_id for role, m in inputs.items() if m.run_id}  # lineage to the runs
    tracker = session.start(ps.name, {**_tags(ps, cached=False), "stage.reason": ps.reason, **runs}, parent_id) \
        if session else NullTracker()
    with _failed_on_error(tracker):  # whatever fails (opening, parameters, the stage, publishing, artifacts)
        ws = Workspace(work, ps.name, ps.key)
        out = ws.open(fresh=fresh)
        kept = _say_why(ps, out)
        if kept:
            tracker.set_tags({"stage.reason": f"{ps.reason}; resumed: {kept} file(s) kept from an interrupted run"})
        ctx = StageContext(name=ps.name, key=ps.key, out=out, inputs=inputs, tracker=tracker,
                           workers=cfg.run.n_workers(), root=root, work=work, fail_after_shards=fail_after_shards,
                           fresh=fresh,
                           extra={name: cfg.section(name) for name in spec.sections})
        tracker.log_params(ps.config)
        t0 = time.perf_counter()
        _same_outside_files(ps, cfg, root, "before it started")
        try:
            stats = module.run(cfg.section(ps.name), ctx)
        except Exception as e:
            if kept and hasattr(e, "add_note"):  # a damaged file kept from the interrupted run would fail every rerun
                e.add_note(f"the {ps.name} stage resumed {kept} file(s) of an interrupted run in {out}; if one is "
                           f"damaged, the same command with --from {ps.name} starts the stage over")
            raise
        _same_outside_files(ps, cfg, root, "while it ran", discard=out)
        seconds = time.perf_counter() - t0
        manifest = ws.publish(ps.version, ps.config, ps.inputs, stats, tracker.run_id, seconds, sources=ps.sources)
        _log_outcome(tracker, manifest, seconds)
        registered = getattr(module, "REGISTER_MODEL", None)
        if registered and session is not None and isinstance(tracker, MlflowRun):
            # lineage: the keys of every input (the tokenize key, and through it corpus and config)
            session.register_model(registered, tracker, "model", {
                "stage.key": ps.key, **input_tags(ps.inputs, ps.sources),
                **{k: str(v) for k, v in manifest.stats.items() if k.endswith("_key")}})
    if isinstance(tracker, MlflowRun):
        tracker.finish()
    return manifest


OUTSIDE = {"external": "the files its own config section names", "tasks_files": "the tasks' files"}


def _same_outside_files(ps: PlannedStage, cfg: RunConfig, root: Path, when: str, discard: Path | None = None) -> None:
    """The files outside the store that the stage's key holds (``plan.outside_files``) must hold what they held
    when the run was planned: an output read from an edited file would be cached under the old file's key (a
    tester edited a task file while pretraining ran; fine-tuning then read the new one under the old key).
    ``discard``: the partial folder, removed then (what the stage wrote may come from either version)."""
    now = outside_files(cfg, ps.name, root, missing_ok=True)
    changed = [k for k, v in now.items() if ps.inputs.get(k) != v]
    if changed:
        if discard is not None:
            shutil.rmtree(discard, ignore_errors=True)
        what = " and ".join(OUTSIDE.get(k, k) for k in changed)
        raise InputChanged(f"{ps.name}: {what} changed since this run planned its key ({when}); nothing is "
                           "published: run the command again, and keep the files as they are while it runs")


@contextmanager
def _failed_on_error(tracker: Any):
    """End the stage's MLflow run on any exception inside the block (a run left RUNNING forever reads as
    still going in the UI), then let the exception go on: KILLED for Ctrl-C or SIGTERM, else FAILED with
    the error (``end_run``)."""
    try:
        yield
    except BaseException as e:
        end_run(tracker, e)
        raise


INTERRUPTED = "interrupted (Ctrl-C or SIGTERM); the same command resumes where it stopped"


def end_run(tracker: Any, error: BaseException) -> None:
    """Close a run that an exception stops: KILLED with ``lmforge.ended`` for an interrupt, else FAILED with
    the error in ``lmforge.error`` and the run's description (what the UI shows first)."""
    if not isinstance(tracker, MlflowRun):
        return
    interrupted = isinstance(error, (KeyboardInterrupt, SystemExit)) or any(
        c.__name__ == "ExternalSignal" for c in type(error).__mro__)  # Prefect's SIGTERM inside a flow
    message = INTERRUPTED if interrupted else f"{type(error).__name__}: {error}"[:5000]
    try:
        tracker.set_tags({"lmforge.ended": message} if interrupted else {
            "lmforge.error": message, "mlflow.note.content": f"**Failed:** {message}"})
    finally:
        tracker.finish("KILLED" if interrupted else "FAILED")


def _log_outcome(tracker: Any, manifest: Manifest, seconds: float) -> None:
    metrics = numeric_metrics(manifest.stats)
    metrics["stage_seconds"] = seconds
    tracker.log_metrics(metrics)
    tracker.flush()
    reports = manifest.path / "reports"
    if reports.is_dir():
        tracker.log_artifact(reports, "reports")
    tracker.log_artifact(manifest.path / "manifest.json")


def _input_runs(ps: PlannedStage, manifest: Manifest) -> dict[str, str]:
    """``input.<role>.run`` of a cached stage, as an executed one has them: the runs that built the folders its
    output was built from (its manifest's ``sources``)."""
    work = ps.path.parent.parent
    out = {}
    for role, key in manifest.sources.items():
        up = ps.input_stages.get(role)
        m = read_manifest(stage_dir(work, up, key)) if up else None
        if m is not None and m.run_id:
            out[f"input.{role}.run"] = m.run_id
    return out


def record_cached(ps: PlannedStage, manifest: Manifest, session: MlflowSession | None,
                  parent_id: str | None) -> str | None:
    """A child run for a stage served from cache, pointing to the run that built it."""
    if session is None or not session.enabled:
        return None
    built_by = manifest.run_id or session.find_stage_run(ps.name, ps.key)
    note = {"mlflow.note.content": f"Served from cache: the output of run {built_by} (its curves, reports and "
                                   "artifacts are there)." if built_by else "Served from cache."}
    tracker = session.start(f"{ps.name} (cached)", {**_tags(ps, cached=True, built_by=built_by, manifest=manifest),
                                                    **_input_runs(ps, manifest), **note}, parent_id)
    with _failed_on_error(tracker):
        tracker.log_params(ps.config)
        tracker.log_metrics(numeric_metrics(manifest.stats))
    tracker.finish()
    return tracker.run_id
