"""The Prefect flow: one task per stage, Prefect's cache keyed by the stage key.

The cache record lives inside the stage's output folder (``<stage>/<key>/.prefect-cache``), so deleting
the folder invalidates Prefect's cache too; the flow validates each manifest first and refreshes the
cache of any stage it must run (missing, damaged, forced). Stage functions live in ``pipeline/`` and
know nothing of Prefect. ``python -m flows.pipeline ...`` is ``lmforge run ...``.
"""
from __future__ import annotations

import logging
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flows import env

env.apply(env.project_root())

from prefect import flow, task  # noqa: E402
from prefect.context import TaskRunContext  # noqa: E402

from pipeline import runner  # noqa: E402
from pipeline.locks import held, stage_lock_path  # noqa: E402
from pipeline.configtypes import ConfigError  # noqa: E402
from pipeline.ingest.readers import IngestError  # noqa: E402
from pipeline.loader.batches import NotEnoughTokens  # noqa: E402
from pipeline.plan import PlanError  # noqa: E402
from pipeline.stage import Diverged, InputGone  # noqa: E402
from pipeline.tasks.readers import TaskError  # noqa: E402
from pipeline.tokenize.stage import TokenizeError  # noqa: E402
from pipeline.tokenize.train import TokenizerTrainingError  # noqa: E402
from pipeline.config import RunConfig  # noqa: E402
from pipeline.plan import FRESH, PlannedStage  # noqa: E402
from pipeline.store import Manifest, validate  # noqa: E402
from pipeline.tracking import MlflowSession  # noqa: E402


@dataclass
class _Run:
    """What the tasks of the current flow run share (kept out of task parameters, which stay tiny)."""
    cfg: RunConfig
    plan: list[PlannedStage]
    root: Path
    work: Path
    session: MlflowSession | None
    parent_id: str | None
    fail_after_shards: dict[str, int]


_RUN: _Run | None = None

# Errors about the user's input or config: their message says what to fix, and the CLI ends with it; Prefect's
# log of the failed task and flow leaves them out (``_NoTracebackForUserErrors``). A bug keeps its traceback.
USER_ERRORS = (ConfigError, PlanError, IngestError, TaskError, TokenizeError, TokenizerTrainingError, NotEnoughTokens,
               Diverged, InputGone)


class _NoTracebackForUserErrors(logging.Filter):
    """Prefect's log of a failed task and flow repeated a user error's message three times before the CLI's own
    ``lmforge: error:`` line: those records go. A record holding any other exception stays, with its traceback,
    whatever its message says; Ctrl-C's and SIGTERM's keep one line."""

    STATE = re.compile(r"(Finished in state Failed\(.Task run encountered an exception|Encountered exception during "
                       r"execution:|Task run failed with exception:) (\w+)[(:]")

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if "aborted by an interrupt signal" in msg or "aborted by a termination signal" in msg:
            return False  # the CLI says how to resume
        exc = record.exc_info[1] if isinstance(record.exc_info, tuple) else None
        if exc is not None:
            if isinstance(exc, USER_ERRORS):
                return False
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                record.exc_info, record.exc_text = None, None
            return True
        state = self.STATE.match(msg)  # Prefect's state lines, no exception attached, in its own wording
        return not (state and state.group(2) in {e.__name__ for e in USER_ERRORS})


for _name in ("prefect.task_runs", "prefect.flow_runs"):
    logging.getLogger(_name).addFilter(_NoTracebackForUserErrors())


def _cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    return f"{parameters['stage']}/{parameters['key']}/.prefect-cache"


TAKEN = "_taken"  # in a stage step's result: the output was there (another process built it), not built here


def _stage(stage: str, key: str, fresh: bool) -> dict[str, Any]:
    r = _RUN
    assert r is not None, "stage task called outside the lmforge flow"
    ps = next(p for p in r.plan if p.name == stage and p.key == key)
    waited = []

    def wait_note() -> None:
        waited.append(True)
        print(f"  {stage:<13} {key}  waiting: another lmforge process is building this output", file=sys.stderr,
              flush=True)
    # One process at a time builds an output: another run of the same stage key would take the partial folder
    # being written for an interrupted run's, resume it and publish it half done.
    with held(stage_lock_path(r.work, stage, key), on_wait=wait_note):
        # built meanwhile (by another process, or Prefect's record is missing): nothing to do. An output planning
        # found damaged, or one another process published while this one waited, gets its digests checked: a
        # damaged one must not pass a size check (its rebuild still resumes what an interrupted rebuild kept).
        if not fresh:
            m, _ = validate(ps.path, deep=bool(waited) or ps.reason.startswith("damaged output"))
            if m is not None:
                return {**m.to_json(), TAKEN: True}
        m = runner.execute(ps, r.cfg, r.plan, r.root, r.work, r.session, r.parent_id, fresh=fresh,
                           fail_after_shards=r.fail_after_shards.get(stage))
    return m.to_json()


stage_task = task(_stage, name="stage", cache_key_fn=_cache_key, persist_result=True,
                  result_serializer="json")


@flow(name="lmforge", log_prints=False, validate_parameters=False)
def pipeline_flow(run_name: str) -> list[dict[str, Any]]:
    r = _RUN
    assert r is not None
    summary = []
    for ps in r.plan:
        if ps.action == "skip":
            continue
        t0 = time.perf_counter()
        refresh = ps.action == "run"
        fresh = refresh and ps.reason in FRESH
        result = stage_task.with_options(name=ps.name, refresh_cache=refresh, result_storage=r.work)(
            stage=ps.name, key=ps.key, fresh=fresh)
        # built by another process meanwhile: served from cache here (Prefect's cached record of such a step keeps
        # the mark: a later run served from that record took nothing from another process)
        taken = bool(result.pop(TAKEN, False)) and refresh
        manifest = Manifest.from_json(result, path=ps.path)
        ps.manifest = manifest
        cached = not refresh or taken
        if cached:
            runner.record_cached(ps, manifest, r.session, r.parent_id)
        seconds = time.perf_counter() - t0
        summary.append({"stage": ps.name, "key": ps.key, "cached": cached, "seconds": round(seconds, 2),
                        "path": str(ps.path), "run_id": manifest.run_id})
        _say(ps, cached, seconds, manifest, taken)
    return summary


def _say(ps: PlannedStage, cached: bool, seconds: float, m: Manifest, taken: bool = False) -> None:
    """One line per stage. An output another process built while this run waited is cached here, but the
    seconds are mostly that wait: the line says so."""
    figures = [f"{k}={v:,}" if isinstance(v, int) else f"{k}={v:.4g}"
               for k, v in list(m.stats.items())[:4] if isinstance(v, (int, float)) and not isinstance(v, bool)]
    state = (f"cached (built by another process; waited {seconds:.1f}s)" if taken else
             f"cached ({seconds:.2f}s)" if cached else f"built in {m.seconds:.1f}s")
    print(f"  {ps.name:<13} {ps.key}  {state:<16} {'  '.join(figures)}", file=sys.stderr, flush=True)


def report_path(summary: list[dict[str, Any]]) -> Path | None:
    """The evaluation report (``report.md``) of a run's summary, if the run had an evaluate stage."""
    return next((Path(s["path"]) / "reports" / "report.md" for s in summary if s["stage"] == "evaluate"), None)


def run(cfg: RunConfig, plan: list[PlannedStage], root: Path, work: Path, config_dict: dict[str, Any],
        fail_after_shards: dict[str, int] | None = None, run_name: str = "pipeline",
        server: Any = None, invocation: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run the flow for a plan; one parent MLflow run holds a child run per executed or cached stage.
    ``invocation`` (the CLI's): the parent run's name, command line, config files and ``--set`` values."""
    global _RUN
    t0 = time.perf_counter()
    how = invocation or {}
    session = MlflowSession(root, enabled=cfg.run.tracking, experiment=cfg.run.experiment)
    if closed := session.close_orphans():
        print(f"lmforge: {closed} MLflow run(s) of a killed lmforge process marked KILLED", file=sys.stderr)
    parent = session.start(how.get("name") or run_name, {
        "lmforge.stages": ",".join(p.name for p in plan if p.action != "skip"),
        **({"lmforge.command": how["command"]} if how.get("command") else {}), **source_tags()})
    try:  # from here on, whatever stops the run (Ctrl-C while the server starts too) ends the parent run
        if session.enabled:
            parent.log_params({"preset": config_dict.get("_preset", ""), "config_files": how.get("config_files", []),
                               "overrides": how.get("overrides", []), **{f"{p.name}.key": p.key for p in plan}})
            parent.client.log_dict(parent.run_id, config_dict, "config.json")
        _RUN = _Run(cfg, plan, root, work, session if session.enabled else None, parent.run_id,
                    fail_after_shards or {})
        if server is not None:  # a flows.server.TemporaryServer started by the CLI before our imports
            server.wait()
        from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
        # The heartbeat thread costs ~1 s per flow run for nothing on a local run.
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            summary = pipeline_flow(run_name)
        if session.enabled:
            built = sum(not s["cached"] for s in summary)
            parent.log_metrics({"stages_run": built, "stages_cached": len(summary) - built})
            parent.client.log_dict(parent.run_id, summary, "summary.json")
            report = report_path(summary)
            logged = report is not None and report.is_file()
            if logged:  # the evaluation report, one click from the run list
                parent.log_artifact(report)
            parent.set_tags({"mlflow.note.content": f"{len(summary)} stage(s): {built} built, "
                             f"{len(summary) - built} cached, {time.perf_counter() - t0:.1f}s" + (
                                 "; the evaluation report is report.md" if logged else "")})
            parent.finish("FINISHED")
        return summary
    except BaseException as e:
        runner.end_run(parent, e)
        raise
    finally:
        _RUN = None


def source_tags() -> dict[str, str]:
    """MLflow's source tags: the git commit of lmforge's code (when it runs from a checkout) and the user."""
    import getpass
    import subprocess
    tags = {"mlflow.source.name": "lmforge run", "mlflow.source.type": "LOCAL"}
    try:
        tags["mlflow.user"] = getpass.getuser()
        code = Path(__file__).resolve().parents[1]  # the code that ran, not the project folder (LMFORGE_ROOT)
        commit = subprocess.run(["git", "-C", str(code), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5)
        if commit.returncode == 0:
            tags["mlflow.source.git.commit"] = commit.stdout.strip()
    except (OSError, KeyError, subprocess.SubprocessError):
        pass
    return tags


if __name__ == "__main__":
    from flows.cli import main
    sys.exit(main(["run", *sys.argv[1:]]))
