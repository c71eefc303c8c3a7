"""The FINETUNE stage body: tasks to files, then every (task, method, init, seed) run; see the package
docstring for the output layout."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from model import load_config, trainable_summary
from pipeline.finetune import VERSION, modeling
from pipeline.finetune.config import FinetuneConfig
from pipeline.finetune.encode import Encoded, encode
from pipeline.finetune.reports import report_files, val_gains, write_run_reports
from pipeline.finetune.reuse import RUN_KEY, Donors, adopt, run_damage, run_key, seal, task_digests, trunk_digests
from pipeline.finetune.scoring import metrics, predict
from pipeline.finetune.trainer import fit
from pipeline.pretrain.runtime import pick_device, set_tf32
from pipeline.progress import Progress
from pipeline.stage import Diverged, StageContext
from pipeline.store import atomic_write_text
from pipeline.tasks import SPLITS, TaskData, TasksConfig, load_task
from pipeline.tracking import NullTracker
from pipeline.tokenize.tokenizer import MODEL_FILE, Tokenizer


def run_name(method: str, init: str, seed: int) -> str:
    return f"{method}-{init}-s{seed}"


def run_specs(cfg: FinetuneConfig) -> list[tuple[str, str, int]]:
    """(method, init, seed): every method from the pretrained model, and (``baseline``) full
    fine-tuning from random init, the honest no-pretraining baseline (a frozen random trunk under
    LoRA or adapters would be a strawman)."""
    specs = [(m, "pretrained", s) for m in cfg.methods for s in cfg.seeds]
    if cfg.baseline:
        specs += [("full", "scratch", s) for s in cfg.seeds]
    return specs


def write_task_files(out: Path, data: TaskData) -> None:
    folder = out / "tasks" / data.name
    folder.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        lines = "".join(json.dumps(ex, ensure_ascii=False) + "\n" for ex in data.splits[split])
        atomic_write_text(folder / f"{split}.jsonl", lines)
    atomic_write_text(folder / "labels.json", json.dumps(
        {"task": data.name, "kind": data.kind, "labels": data.labels, "scheme": data.scheme}, indent=1))
    atomic_write_text(folder / "drops.json", json.dumps(data.drops_report(), indent=1, ensure_ascii=False))


def tokenizer_file(model_dir: Path) -> Path:
    for p in (model_dir / "tokenizer" / MODEL_FILE, model_dir / MODEL_FILE):
        if p.is_file():
            return p
    raise FileNotFoundError(f"no tokenizer in {model_dir} (expected tokenizer/{MODEL_FILE})")


def one_run(ctx: StageContext, cfg: FinetuneConfig, data: TaskData, enc: dict[str, Encoded], model_dir: Path,
            tok: Tokenizer, method: str, init: str, seed: int, device: torch.device, max_len: int,
            progress: bool = True, key: str | None = None) -> dict[str, Any]:
    """Train one run, save its best model and reports, return its result (also written as result.json).
    ``progress``: its own progress line (off in worker processes: the parent counts runs instead). ``key``: the
    run's own key (``reuse.run_key``), written beside its result."""
    t0 = time.perf_counter()
    name = run_name(method, init, seed)
    mcfg = load_config(model_dir)
    if cfg.trunk_dropout is not None:  # trains with it, and the saved task model records it
        mcfg = dataclasses.replace(mcfg, dropout=cfg.trunk_dropout)
    pad_id = tok.pad_id if tok.pad_id is not None else 0
    model = modeling.build(data.kind, len(data.labels), mcfg, model_dir if init == "pretrained" else None,
                           cfg.pooling, cfg.dropout, seed, cfg.reinit_top, cfg.head)
    last = cfg.then if method == "two_stage" else method
    extra = modeling.add_method_modules(model, last, cfg)
    model.set_aux_lm(cfg.aux_lm, mcfg.vocab_size)
    prefix = f"{data.name}.{name}."
    try:
        fitted = fit(model, method, enc["train"], data.splits["validation"], enc["validation"], data.labels,
                     data.kind, data.scheme, cfg, seed, pad_id, device,
                     log=lambda m, step: ctx.tracker.log_metrics({prefix + k: v for k, v in m.items()}, step=step),
                     label=f"finetune {data.name} {name}", progress=progress)
    except Diverged as e:  # which of the stage's runs: the others may be fine (those done are kept for the rerun)
        raise Diverged(f"finetune run {data.name}/{name}: {str(e).removeprefix('finetune: ')}") from None
    trainable, total = trainable_summary(model)
    # two-stage: the checkpoint kept may be stage 1's (validation peaked before stage 2 trained): only the head
    stages = {"best_stage": 1 if fitted.best_epoch <= cfg.head_epochs else 2} if method == "two_stage" else {}
    if stages.get("best_stage") == 1:
        trainable = sum(p.numel() for n, p in model.named_parameters() if n.startswith(modeling.HEAD + "."))
    preds, _ = predict(model, enc["validation"], data.kind == "tagging", pad_id, cfg.eval_batch_size, device)
    detail = metrics(data.splits["validation"], preds, data.labels, data.kind, data.scheme, detail=True)
    run_dir = ctx.out / "runs" / data.name / name
    tmp = run_dir.with_name(f".{name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    then = {"then": cfg.then} if method == "two_stage" else {}  # what the second stage trained
    meta = {"task": data.name, "kind": data.kind, "labels": data.labels, "scheme": data.scheme, "arch": mcfg.arch,
            "max_len": max_len, "method": method, "init": init, "seed": seed, **then, **extra}
    modeling.save(model.cpu(), mcfg, tmp / "model", tokenizer_file(model_dir), meta)
    result = {
        "task": data.name, "kind": data.kind, "method": method, **then, "init": init, "seed": seed,
        "metric": cfg.metric_for(data.kind), "best_epoch": fitted.best_epoch, "best_step": fitted.best_step, **stages,
        "best": {k: float(v) for k, v in fitted.best.items()}, "curves": fitted.curves, "steps": fitted.steps,
        "stopped_early": fitted.stopped_early, "trainable_params": trainable, "total_params": total,
        "trainable_share": trainable / total, "labels": data.labels, "scheme": data.scheme, "max_len": max_len,
        "n_train": len(enc["train"]), "n_validation": len(enc["validation"]),
        "truncated": {s: e.truncated for s, e in enc.items()}, "seconds": round(time.perf_counter() - t0, 3),
    }
    atomic_write_text(tmp / "result.json", json.dumps(result, indent=1))
    if key:
        atomic_write_text(tmp / RUN_KEY, key + "\n")
    seal(tmp)
    # the reports first: a run counts as done (resume skips it) once run_dir/result.json exists
    write_run_reports(ctx.reports, data.name, name, data.kind, data.labels, detail)
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, run_dir)
    ctx.tracker.log_metrics(*logged_metrics(result)[-1])
    return result


def logged_metrics(result: dict[str, Any]) -> list[tuple[dict[str, float], int | None]]:
    """What a run logs to MLflow, rebuilt from its result: the validation curve at its optimizer steps (as
    ``fit`` logs it while training), then the best point and the trainable share. The parent logs a worker's
    runs, and a resumed stage the runs it kept, from here."""
    prefix = f"{result['task']}.{run_name(result['method'], result['init'], result['seed'])}."
    calls = [({prefix + k: v for k, v in rec.items() if k not in ("epoch", "step")}, rec["step"])
             for rec in result["curves"]]
    calls.append(({prefix + "best_epoch": result["best_epoch"], prefix + "trainable_params": result["trainable_params"],
                   prefix + "trainable_share": result["trainable_share"],
                   **{prefix + "best_val_" + k: v for k, v in result["best"].items()}}, None))
    return calls


def result_path(out: Path, task: str, spec: tuple[str, str, int]) -> Path:
    return out / "runs" / task / run_name(*spec) / "result.json"


def run_threads(cfg: FinetuneConfig) -> int:
    """CPU threads of one run: ``cfg.threads``, or the cores shared out among a task's runs (at least 1). Not
    among every task's: a task added or removed would change every run's thread count, and so its key."""
    cores = max(1, os.cpu_count() or 1)
    return cfg.threads or max(1, cores // min(cores, len(run_specs(cfg))))


def parallel_runs(workers: int, todo: int, threads: int) -> int:
    """How many runs of ``threads`` threads train side by side: at most ``workers``, and no more than the cores
    hold (the tiny preset's 2 tasks of one 2-thread run each ran 4 threads on 2 cores)."""
    cores = max(1, os.cpu_count() or 1)
    return max(1, min(workers, todo, cores // threads))


EXECUTION = ("runs_resumed", "runs_reused", "parallel_runs")  # figures of how a stage ran, not of what it produced


def run_stage(cfg: FinetuneConfig, ctx: StageContext) -> dict[str, Any]:
    tasks_cfg: TasksConfig = ctx.extra.get("tasks") or TasksConfig()
    model_dir = ctx.input("model").path / "model"
    tok = Tokenizer.from_dir(model_dir)
    mcfg = load_config(model_dir)
    max_len = min(cfg.max_len, mcfg.block_size)
    modeling.check_trunk_options(mcfg, cfg)
    device = pick_device(cfg.device, "finetune.device")
    set_tf32(device, False)  # fp32 training, whatever stage ran before in this process (a run key holds the device)
    # A task's runs (method x init x seed) are independent: on CPU, up to ``ctx.workers`` of them train at once
    # in worker processes (a small model gains more from this than from intra-op threads:
    # bench/finetune_parallel.py). Each run gets ``run_threads`` threads, fixed by the config and the
    # machine's cores, never by the worker count or by how many runs a resumed stage has left: the thread
    # count changes float rounding, so this keeps the results independent of both (tests/finetune/test_stage.py).
    threads = run_threads(cfg)
    if device.type == "cpu":
        torch.set_num_threads(threads)
    stats: dict[str, Any] = {"max_len": max_len, "runs": 0, "runs_resumed": 0, "runs_reused": 0}
    prepared: list[tuple[TaskData, dict[str, Encoded]]] = []
    for tcfg in tasks_cfg.tasks:
        data = load_task(tcfg, ctx.root, cache_dir=ctx.work / "_cache")
        if same := _shared_files(tcfg):
            ctx.note(f"task {tcfg.name}: {same} read the same file: its scores measure what was trained on, not "
                     "what was learned")
        write_task_files(ctx.out, data)
        enc = {s: encode(data.splits[s], data.kind, data.labels, tok, mcfg.arch, max_len)
               for s in ("train", "validation")}
        t = data.name
        stats.update({f"{t}.n_{s}": len(data.splits[s]) for s in SPLITS})
        stats.update({f"{t}.truncated_{s}": e.truncated for s, e in enc.items()})
        stats[f"{t}.n_labels"] = len(data.labels)
        stats[f"{t}.dropped"] = len(data.drops)
        stats.update({f"{t}.dropped.{r}": n for r, n in data.drop_counts().items()})
        prepared.append((data, enc))
    jobs = [(data, enc, spec) for data, enc in prepared for spec in run_specs(cfg)]
    digests = {data.name: task_digests(ctx.out / "tasks" / data.name) for data, _ in prepared}
    kinds = {data.name: data.kind for data, _ in prepared}
    trunk = trunk_digests(model_dir, tokenizer_file(model_dir))

    def key_for(task: str, spec: tuple[str, str, int], n_threads: int) -> str:
        return run_key(cfg, VERSION, spec, digests[task], trunk, max_len, device.type, n_threads, kinds[task])

    keys = [key_for(data.name, spec, threads) for data, _, spec in jobs]
    done = [_kept(ctx, data.name, spec, key) for (data, _, spec), key in zip(jobs, keys)]
    stats["runs_resumed"] = sum(done)
    reused: dict[Path, list[str]] = {}
    donors = Donors(ctx.work / ctx.name)
    for i, (data, _, spec) in enumerate(jobs):  # the same run in another output: linked in, not trained again
        if not done[i] and not ctx.fresh and (donor := donors.find(data.name, run_name(*spec), keys[i])):
            adopt(donor, ctx.out, data.name, run_name(*spec), report_files(data.kind, run_name(*spec)))
            reused.setdefault(donor.parents[2], []).append(f"{data.name} {run_name(*spec)}")
            done[i] = True
    for folder, names in reused.items():
        ctx.note(f"{len(names)} of {len(jobs)} runs reused from {folder} (the same inputs and settings, not trained "
                 f"again): {', '.join(names[:6])}{', ...' if len(names) > 6 else ''}")
    stats["runs_reused"] = sum(map(len, reused.values()))
    reused_names = {name for names in reused.values() for name in names}
    _say_missed(ctx, donors, [(data.name, spec) for (data, _, spec), d in zip(jobs, done) if not d], key_for,
                threads if device.type == "cpu" else 0)
    for (data, _, spec), finished in zip(jobs, done):  # finished before a kill, or reused: kept, and logged again
        if finished:
            for metrics_, step in logged_metrics(json.loads(result_path(ctx.out, data.name, spec).read_text())):
                ctx.tracker.log_metrics(metrics_, step=step)
    todo = [(*job, key) for job, key, finished in zip(jobs, keys, done) if not finished]
    parallel = parallel_runs(ctx.workers, len(todo), threads) if device.type == "cpu" else 1
    stats["parallel_runs"] = parallel
    if parallel > 1:
        run_parallel(ctx, cfg, todo, model_dir, device, max_len, parallel, threads)
    else:
        for data, enc, (method, init, seed), key in todo:
            one_run(ctx, cfg, data, enc, model_dir, tok, method, init, seed, device, max_len, key=key)
    # Published below with a manifest of the files as they are now: a run kept from a killed attempt or linked in
    # from another output may share that output's files, which may have changed since (a damaged disk, a hand
    # edit); such a run trains again. (A run trained here has files of its own, sealed just now.)
    for (data, enc, (method, init, seed)), key, kept in zip(jobs, keys, done):
        if kept and (why := run_damage(result_path(ctx.out, data.name, (method, init, seed)).parent, key)):
            ctx.note(f"{data.name} {run_name(method, init, seed)}: {why}: trained again")
            one_run(ctx, cfg, data, enc, model_dir, tok, method, init, seed, device, max_len, key=key)
            if f"{data.name} {run_name(method, init, seed)}" in reused_names:
                stats["runs_reused"] -= 1
    for data, _ in prepared:
        t, metric = data.name, cfg.metric_for(data.kind)
        by_run: dict[tuple[str, str], list[float]] = {}
        for method, init, seed in run_specs(cfg):
            result = json.loads(result_path(ctx.out, t, (method, init, seed)).read_text())
            stats["runs"] += 1
            key = f"{t}.{run_name(method, init, seed)}"  # the names its curves are logged under (logged_metrics)
            stats[f"{key}.best_val_{metric}"] = result["best"][metric]
            stats[f"{key}.best_epoch"] = result["best_epoch"]
            stats[f"{key}.trainable_params"] = result["trainable_params"]
            by_run.setdefault((method, init), []).append(result["best"][metric])
            if cfg.log_checkpoints:
                run_dir = result_path(ctx.out, t, (method, init, seed)).parent
                ctx.tracker.log_artifact(run_dir / "model", f"checkpoints/{t}/{run_dir.name}")
        stats.update(val_gains(t, metric, by_run))
    ctx.tracker.flush()
    # The report holds what the runs produced; how they were executed (resumed, in parallel) is only a figure.
    ctx.write_report("summary.json", {k: v for k, v in stats.items() if k not in EXECUTION})
    return stats


def _shared_files(tcfg: Any) -> str:
    """"train and test" (or another pair of splits) when a files task names one file for both, else ""."""
    files = {s: os.path.normpath(tcfg.file(s)) for s in ("train", "validation", "test") if tcfg.file(s)}
    pairs = [f"{a} and {b}" for i, a in enumerate(files) for b in list(files)[i + 1:] if files[a] == files[b]]
    return ", ".join(pairs)


def _kept(ctx: StageContext, task: str, spec: tuple[str, str, int], key: str) -> bool:
    """Whether the partial output being resumed holds this run, finished and intact (``reuse.run_damage``); a
    damaged one is removed, to be trained again."""
    run_dir = result_path(ctx.out, task, spec).parent
    if not (run_dir / "result.json").exists():
        return False
    why = run_damage(run_dir, key)
    if why:
        ctx.note(f"{task} {run_name(*spec)}: finished by an earlier attempt, but {why}: trained again")
        shutil.rmtree(run_dir)
    return not why


def _say_missed(ctx: StageContext, donors: Donors, missing: list[tuple[str, tuple[str, str, int]]],
                key_for: Any, threads: int) -> None:
    """Why runs that earlier outputs hold are trained again: a forced rerun, a damaged copy, or (CPU, ``threads``
    > 0) another thread count, which changes float rounding: the note names the ``finetune.threads`` to set."""
    if donors.damaged:
        ctx.note(f"{len(donors.damaged)} matching run(s) of earlier outputs not reused: their files do not match "
                 f"their manifests ({', '.join(donors.damaged[:4])}{', ...' if len(donors.damaged) > 4 else ''})")
    if ctx.fresh:
        same = sum(bool(donors.holds(task, run_name(*spec), key_for(task, spec, threads))) for task, spec in missing)
        if same:
            ctx.note(f"{same} run(s) match runs of earlier outputs but are trained again: a forced rerun (--force, "
                     f"--stage, --from) reuses nothing; without it they would be reused")
        return
    other: dict[int, int] = {}
    for task, spec in missing if threads else []:
        for t in range(1, max(os.cpu_count() or 1, threads) + 1):
            if t != threads and donors.holds(task, run_name(*spec), key_for(task, spec, t)):
                other[t] = other.get(t, 0) + 1
                break
    for t, n in other.items():
        ctx.note(f"{n} run(s) match runs of earlier outputs trained with {t} thread(s) each, but this one gives each "
                 f"run {threads} (the thread count changes float rounding): set finetune.threads: {t} to reuse them")


def _worker_start(threads: int, parent: int | None = None) -> None:
    torch.set_num_threads(threads)
    if parent is not None:
        import threading
        threading.Thread(target=_exit_with, args=(parent,), daemon=True, name="lmforge-parent-watch").start()


def _exit_with(parent: int, every: float = 0.1) -> None:
    """A worker's watch on the stage's process: when it is gone (``kill -9``), the worker ends too, at once.
    Otherwise it would finish its run into the partial folder a rerun is resuming from, and race with it (the
    pool's processes are children of the fork server, which outlives the stage's process)."""
    while _alive(parent):
        time.sleep(every)
    os._exit(1)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, killed and not yet reaped, does not)."""
    if os.path.isdir("/proc/self"):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
        except OSError:
            return False
    try:  # no /proc (macOS): whether a signal could reach it
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _worker_run(out: Path, cfg: FinetuneConfig, data: TaskData, enc: dict[str, Encoded], model_dir: Path,
                spec: tuple[str, str, int], device: str, max_len: int, key: str | None = None) -> dict[str, Any]:
    ctx = StageContext(name="finetune", key="", out=out, tracker=NullTracker())
    return one_run(ctx, cfg, data, enc, model_dir, Tokenizer.from_dir(model_dir), *spec, torch.device(device),
                   max_len, progress=False, key=key)


# a task, its encoded splits, (method, init, seed) and the run's key
Job = tuple[TaskData, dict[str, Encoded], tuple[str, str, int], str]


def run_parallel(ctx: StageContext, cfg: FinetuneConfig, todo: list[Job], model_dir: Path, device: torch.device,
                 max_len: int, parallel: int, threads: int) -> None:
    """Train the ``todo`` runs (every task's) in ``parallel`` worker processes of ``threads`` threads each. They
    come from a fork server (a clean process that has imported torch and this module, never run OpenMP:
    forking it is safe and cheap); each run writes its own folder atomically, as in the sequential path, and
    the parent logs the runs' metrics in run order.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    if "forkserver" in multiprocessing.get_all_start_methods():
        mp = multiprocessing.get_context("forkserver")
        mp.set_forkserver_preload(["torch", __name__])
    else:  # Windows: fresh interpreters
        mp = multiprocessing.get_context("spawn")
    progress = Progress("finetune", total=len(todo), unit="runs", every=0.0)
    pool = ProcessPoolExecutor(parallel, mp_context=mp, initializer=_worker_start, initargs=(threads, os.getpid()))
    try:
        futures = {pool.submit(_worker_run, ctx.out, cfg, data, enc, model_dir, spec, str(device), max_len, key): i
                   for i, (data, enc, spec, key) in enumerate(todo)}
        finished = {}
        for fut in as_completed(futures):
            result = fut.result()
            finished[futures[fut]] = result
            progress.update(1, extra=f"{result['task']} {run_name(result['method'], result['init'], result['seed'])} "
                                     f"{result['seconds']:.0f} s")
    except BaseException:
        # Ctrl-C, SIGTERM or a failed run: stop now. Leaving the pool normally would train every queued run
        # first; the finished ones are published, so the next run resumes after them.
        procs = list((getattr(pool, "_processes", None) or {}).values())
        for proc in procs:
            proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in procs:
            proc.join(5)
        raise
    pool.shutdown()
    progress.close()
    for i in range(len(todo)):  # in run order, whatever order they finished in
        for metrics_, step in logged_metrics(finished[i]):
            ctx.tracker.log_metrics(metrics_, step=step)


__all__ = ["run_stage", "run_specs", "run_name", "write_task_files", "one_run", "run_parallel", "run_threads",
           "parallel_runs", "tokenizer_file", "logged_metrics"]
