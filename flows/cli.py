"""``lmforge``: run the pipeline, show what is cached, open the MLflow UI (the commands that use a model:
``flows.use``).

Prefect is imported only by ``run`` (``status`` and ``ui`` stay fast and need no Prefect server).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from flows import env, use


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", help="named preset (tiny, default, gpu); run's default: default")
    p.add_argument("--config", action="append", default=[], metavar="FILE", help="YAML config file(s)")
    p.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override config values, e.g. --set clean.min_words=20 dedup.threshold=0.7 "
                        "tasks.tasks[stdlib_area].max_train=500")


def _port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:  # (0 would let the server pick a port this command could not name)
        raise argparse.ArgumentTypeError(f"got {value}, allowed: 1 to 65535")
    return value


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="lmforge", description="From a raw corpus to pretrained and fine-tuned LMs.")
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the pipeline (cached stages are skipped)")
    _config_args(run)
    sel = run.add_mutually_exclusive_group()
    sel.add_argument("--stage", help="run this stage alone, inputs from cache")
    sel.add_argument("--from", dest="from_", metavar="STAGE", help="rerun this stage and everything after it")
    run.add_argument("--until", metavar="STAGE", help="stop after this stage")
    run.add_argument("--force", action="store_true", help="ignore every cache of the selected stages")
    run.add_argument("--workers", type=int, help="processes for sharded stages (default: one per core)")
    run.add_argument("--no-tracking", action="store_true", help="do not record the run in MLflow")
    run.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    st = sub.add_parser("status", help="per stage: key, cached or not, folder, producing MLflow run")
    _config_args(st)
    st.add_argument("--json", action="store_true")
    st.add_argument("--verify", action="store_true", help="also check file digests (slower)")
    gc = sub.add_parser("gc", help="remove stage outputs, partial folders and caches that no config uses")
    _config_args(gc)
    gc.add_argument("--dry-run", action="store_true", help="list what would go, remove nothing")
    gc.add_argument("--only-current", action="store_true",
                    help="keep only what this config uses (default: also every config recorded in data/runs/)")
    ui = sub.add_parser("ui", help="the MLflow UI over this project's store, on 127.0.0.1")
    ui.add_argument("--port", type=_port, default=5000, help="1 to 65535 (default 5000)")
    use.add_parsers(sub)
    return ap


def _load(args: argparse.Namespace, root: Path | None = None):
    """The run config the command line asks for. ``root`` (status, gc): with no --preset, --config or --set,
    the config of the latest ``lmforge run`` (data/runs/), so that ``lmforge status`` after ``lmforge run
    --preset tiny`` shows that run's stages; the ``default`` preset when none is recorded."""
    from pipeline import config
    from pipeline.configtypes import build, to_dict
    latest = None
    if root is not None and args.preset is None and not args.config and not args.overrides:
        latest = _latest_run_config(root)
    if latest is not None:
        cfg, preset = latest
    else:
        args.preset = preset = args.preset or "default"
        overrides = list(args.overrides)
        if getattr(args, "workers", None) is not None:
            overrides.append(f"run.workers={args.workers}")
        if getattr(args, "no_tracking", False):
            overrides.append("run.tracking=false")
        data = config.resolve(args.preset, args.config, overrides)
        cfg = config.with_init_tokenizer(build(config.RunConfig, data), root or env.project_root())
    return cfg, {"_preset": preset, **to_dict(cfg)}


def _latest_run_config(root: Path):
    """The latest saved run config and its preset; None when there is none that loads."""
    from pipeline.gc import BAD_CONFIG, read_run_config, run_config_files
    saved = run_config_files(root)
    if not saved:
        return None
    try:
        cfg, preset = read_run_config(saved[-1])
    except BAD_CONFIG as e:  # an older lmforge's config
        print(f"lmforge: the latest run's config ({saved[-1].name}) no longer loads ({e}); the default preset",
              file=sys.stderr)
        return None
    print(f"lmforge: the config of the latest run ({saved[-1].relative_to(root)}, preset {preset}); --preset, "
          "--config or --set choose another", file=sys.stderr)
    return cfg, preset


def cmd_run(args: argparse.Namespace, root: Path) -> int:
    from flows import server
    from pipeline import locks
    # Start Prefect's server first: it boots on the other core while we load configs and check the store.
    temp_server = None if args.dry_run else server.start_if_needed()
    from pipeline.store import atomic_write_text
    saved, live, planned = None, None, False
    try:
        from pipeline.plan import FRESH, make_plan
        cfg, cfg_dict = _load(args)
        work = root / "data" / "work"
        if not args.dry_run:  # live from before planning: gc then keeps what the plan finds cached
            saved = _config_file(root)
            live = locks.acquire(locks.run_lock_path(saved))
            atomic_write_text(saved, json.dumps(cfg_dict, indent=1))
        plan = make_plan(cfg, work, root, stage=args.stage, from_=args.from_, until=args.until, force=args.force)
        if live is not None:
            locks.note_plan(live, {p.name: p.key for p in plan})
        if args.dry_run:
            for p in plan:
                left = _resumable(p.path, work, p.name, p.key) if p.action == "run" and p.reason not in FRESH else ""
                print(f"{p.name:<13} {p.key}  {p.action:<6} {p.reason}{left}")
            return 0
        from flows import pipeline
        t0 = time.perf_counter()
        print(f"lmforge: preset {args.preset}, store {work}", file=sys.stderr)
        planned = True
        summary = pipeline.run(cfg, plan, root, work, cfg_dict, server=temp_server, invocation=_invocation(args))
    except BaseException:
        if temp_server is not None and not planned:  # a config or plan error: no flow uses the server (its lock)
            temp_server.stop()
        if saved is not None and not planned:  # a config that planned nothing is no run's
            saved.unlink(missing_ok=True)
        raise
    finally:
        if live is not None:
            locks.run_lock_path(saved).unlink(missing_ok=True)
            locks.release(live)
    report = pipeline.report_path(summary)
    if report is not None and report.exists():
        print("\n" + report.read_text(), flush=True)
    built = sum(not s["cached"] for s in summary)
    print(f"lmforge: {len(summary)} stage(s), {built} built, {len(summary) - built} cached, "
          f"{time.perf_counter() - t0:.1f}s", file=sys.stderr)
    tasks = [t.name for t in cfg.tasks.tasks]
    if tasks and any(s["stage"] == "finetune" for s in summary):
        print(f"lmforge: use a fine-tuned model: lmforge predict --task {tasks[0]} \"some text\" (tasks: "
              f"{', '.join(tasks)}); browse the runs: lmforge ui", file=sys.stderr)
    return 0


def _resumable(path: Path, work: Path, stage: str, key: str) -> str:
    """What an interrupted run left in the output's partial folder for the next run to resume (or ""), or that
    another lmforge process is building it now."""
    from pipeline import locks
    if locks.held_elsewhere(locks.stage_lock_path(work, stage, key)):
        return "; another lmforge process is building it now"
    from pipeline.store import output_files
    kept = len(output_files(path.with_name(path.name + ".partial")))
    return f"; {kept} file(s) of an interrupted run kept, resumed by the next run" if kept else ""


def _invocation(args: argparse.Namespace) -> dict[str, Any]:
    """What the parent MLflow run records of how it was asked for: its name says the preset, config files and
    ``--set`` values (runs named alike are told apart in the UI's list), the command line is a tag."""
    shown = [args.preset, *(Path(f).name for f in args.config), *args.overrides,
             *([f"--stage {args.stage}"] if args.stage else []), *([f"--from {args.from_}"] if args.from_ else []),
             *([f"--until {args.until}"] if args.until else []), *(["--force"] if args.force else [])]
    name = " ".join(shown)
    return {"name": name if len(name) <= 100 else name[:99] + "…", "command": shlex.join(["lmforge", *args.argv]),
            "config_files": [str(f) for f in args.config], "overrides": list(args.overrides)}


def _config_file(root: Path) -> Path:
    """Where a run saves its config: ``data/runs/<time>-<pid>-config.json`` (runs started in the same second keep
    a file each)."""
    return root / "data" / "runs" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-config.json"


def cmd_status(args: argparse.Namespace, root: Path) -> int:
    from pipeline.plan import blocked_stages, compute
    from pipeline.store import validate
    cfg, _ = _load(args, root)
    rows = []
    work = root / "data" / "work"
    planned = compute(cfg, work, root, missing_ok=True)
    blocked = blocked_stages(planned)  # an outside file the config names is missing: the stages before it are shown
    for p in planned:
        m, why = validate(p.path, deep=True) if args.verify and p.path.exists() else (p.manifest, p.reason)
        after = any(up in blocked for up in p.input_stages.values())  # its key hangs on the missing file: unknown
        if p.name in blocked:
            why, m = f"cannot run: {blocked[p.name]}" + (", which cannot" if blocked[p.name].startswith("needs ")
                                                         else ""), None
        rows.append({"stage": p.name, "key": None if after else p.key, "cached": m is not None,
                     "path": None if after else str(p.path), "run_id": m.run_id if m else None,
                     **({} if m else {"reason": why + ("" if p.name in blocked else
                                                       _resumable(p.path, work, p.name, p.key))})})
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        for r in rows:
            why = r.get("reason", "")
            if why.startswith("damaged output (") and why.endswith(")"):  # the plan's wording: "damaged" says it
                why = why[len("damaged output ("):-1]
            there = "damaged" if r["path"] and Path(r["path"]).exists() else "missing"  # not what it lists
            state = "cached" if r["cached"] else f"{there} ({why})"
            print(f"{r['stage']:<13} {r['key'] or '-':<16}  {state:<24} {r['path'] or '-'}  run={r['run_id'] or '-'}")
    for stage, why in blocked.items():
        if not why.startswith("needs "):
            print(f"lmforge status: {stage}: {why} (the stages after it wait for it too)", file=sys.stderr)
    damaged = [r for r in rows if not r["cached"] and r["path"] and Path(r["path"]).exists()]  # not what it lists
    if args.verify and damaged:
        print(f"lmforge status: {len(damaged)} output(s) failed verification: "
              + ", ".join(f"{r['stage']} {r['key']} ({r['reason']})" for r in damaged), file=sys.stderr)
        return 1
    return 0


def cmd_gc(args: argparse.Namespace, root: Path) -> int:
    from pipeline import gc
    cfg, _ = _load(args, root)
    garbage = gc.find(cfg, root, only_current=args.only_current)
    for path, why in garbage.ignored_configs:
        print(f"lmforge gc: ignoring {path.name}: no longer a valid config ({why})", file=sys.stderr)
    for stage, why in garbage.kept_blocked.items():
        print(f"keep    every {stage} output  (a config's key for it is unknown: {why}; restore the file, or remove "
              "that config from data/runs/, to collect them)")
    for folder in garbage.kept_busy:
        print(f"keep    {folder}  (written in the last {gc.BUSY_MINUTES:.0f} minutes: a run may be using it)")
    verb = "would remove" if args.dry_run else "remove"
    files: dict[tuple[Path, str], list[int]] = {}  # stale attribute files: a line per folder, not per file
    for path, size, why in garbage.remove:
        if path.is_dir():
            print(f"{verb}  {path}  {size / 1e6:,.1f} MB  ({why})")
        else:
            files.setdefault((path.parent, why), []).append(size)
    for (folder, why), sizes in files.items():
        print(f"{verb}  {len(sizes)} file(s) in {folder}  {sum(sizes) / 1e6:,.1f} MB  ({why})")
    freed = garbage.bytes if args.dry_run else gc.collect(garbage)
    linked = (f" ({garbage.linked / 1e6:,.1f} MB more stay on disk: hard links to them remain in MLflow's artifacts "
              "under mlruns/ or in outputs still used)") if garbage.linked else ""
    print(f"lmforge gc: {len(garbage.remove)} item(s), {freed / 1e6:,.1f} MB "
          f"{'would be freed' if args.dry_run else 'freed'}{linked}; live configs: {garbage.live_configs}",
          file=sys.stderr)
    return 0


def cmd_ui(args: argparse.Namespace, root: Path) -> int:
    from pipeline.tracking import default_uri
    (root / "mlruns").mkdir(exist_ok=True)
    uri = default_uri(root)
    artifacts = (root / "mlruns" / "artifacts").resolve().as_uri()
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
           "--default-artifact-root", artifacts, "--host", "127.0.0.1", "--port", str(args.port), "--workers", "1"]
    environ = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    if why := _port_taken(args.port):  # mlflow's server logs the error and exits 0: a user saw "UI on ..." and none
        print(f"lmforge: error: cannot serve on port {args.port} of 127.0.0.1 ({why}); choose another with --port",
              file=sys.stderr)
        return 1
    print(f"lmforge: MLflow UI on http://127.0.0.1:{args.port} over {uri} (Ctrl-C stops it)", file=sys.stderr)
    from flows.server import _die_with_parent
    # its own session: Ctrl-C reaches lmforge, which stops the server with SIGTERM (uvicorn printed two
    # tracebacks when the SIGINT reached it too); it still dies with lmforge however lmforge dies
    proc = subprocess.Popen(cmd, env=environ, start_new_session=True, preexec_fn=_die_with_parent)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGTERM)
        return proc.wait()


def _port_taken(port: int) -> str | None:
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a TIME_WAIT port is free
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as e:
            return e.strerror or str(e)
    return None


RESUME = ("lmforge run with the same config resumes where it stopped (--force, --stage and --from start their "
          "stages over)")
_terminated = False


def _on_sigterm(*_: Any) -> None:
    global _terminated
    _terminated = True
    sys.exit(143)


def main(argv: list[str] | None = None) -> int:
    # SIGTERM ends the run like Ctrl-C: atexit handlers (the temporary Prefect server) still run,
    # and the stage's partial folder stays for the next run to resume from.
    signal.signal(signal.SIGTERM, _on_sigterm)
    root = env.project_root()
    env.apply(root)
    args = parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the command line, as the parent MLflow run records it
    from pipeline.configtypes import ConfigError
    from pipeline.plan import PlanError
    try:
        commands = {"run": cmd_run, "status": cmd_status, "gc": cmd_gc, "ui": cmd_ui, **use.COMMANDS}
        return commands[args.command](args, root)
    except (ConfigError, PlanError, FileNotFoundError, ValueError) as e:
        print(f"lmforge: error: {e}", *getattr(e, "__notes__", ()), sep="\n", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lmforge: interrupted" + (f"; {RESUME}" if args.command == "run" else ""), file=sys.stderr)
        return 130
    except SystemExit:
        if _terminated:
            print("lmforge: terminated (SIGTERM)" + (f"; {RESUME}" if args.command == "run" else ""), file=sys.stderr)
        raise


if __name__ == "__main__":
    sys.exit(main())
