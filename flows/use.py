"""The commands that use a built model: ``generate`` and ``fill-mask`` (a pretrained LM), ``predict`` (a fine-tuned
task model). None of them needs Prefect or MLflow."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"got {value}, allowed: 1 or more")
    return value


def _not_negative(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if not value >= 0:  # (NaN too)
            raise argparse.ArgumentTypeError(f"got {text}, allowed: 0 or more")
        return value
    return parse


def add_parsers(sub: Any) -> None:
    gen = sub.add_parser("generate", help="sample text from the latest pretrained causal LM")
    gen.add_argument("--prompt", default="")
    gen.add_argument("--max-tokens", type=_positive, default=100)
    gen.add_argument("--temperature", type=_not_negative(float), default=0.8,
                     help="softmax temperature; 0: greedy, the likeliest piece each time (default 0.8)")
    gen.add_argument("--top-k", type=_not_negative(int), default=50,
                     help="sample among the k likeliest pieces; 0: among all of them (default 50)")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--model", type=Path, help="a model folder (default: the latest pretrained decoder)")
    fm = sub.add_parser("fill-mask", help="the latest pretrained encoder's top predictions for [MASK] (an "
                        "encoder-decoder's: the span it writes for each)")
    fm.add_argument("text")
    fm.add_argument("--top-k", type=_positive, default=None, help="pieces per mask (default 5; at most the "
                    "vocabulary; an encoder-decoder writes one greedy span per mask, and takes no --top-k)")
    fm.add_argument("--model", type=Path, help="a model folder (default: the latest pretrained encoder or "
                    "encoder-decoder)")
    pr = sub.add_parser("predict", help="label texts or tag their words with a fine-tuned task model (by default the "
                        "best pretrained run of the newest fine-tuning output)")
    pr.add_argument("texts", nargs="*", help="texts to label or tag (a pair task: the two texts separated by a tab)")
    pr.add_argument("--task", help="the task's name (needed when the fine-tuning output holds several)")
    pr.add_argument("--file", help="more inputs: one text a line, or JSON Lines (a .jsonl file, or --jsonl: text, "
                    "text_pair or tokens); - reads stdin")
    pr.add_argument("--model", type=Path, help="a fine-tuned run's folder (or its model/), or a finetune output "
                    "(its best run for --task); default: the newest finetune output holding --task")
    pr.add_argument("--jsonl", action="store_true", help="read --file as JSON Lines whatever its name (stdin too)")
    pr.add_argument("--json", action="store_true", help="one JSON object a line, with every probability and span")


def _model(args: argparse.Namespace, root: Path, model_class: str) -> Path:
    """``--model``, else the newest pretrained model of that class in the store (named on stderr)."""
    from pipeline import inference
    if args.model:
        return inference.model_folder(args.model)
    folder = inference.latest_model(root / "data" / "work", model_class)
    print(f"lmforge: the latest pretrained {'causal LM' if model_class == 'CausalLM' else 'model that fills masks'}: "
          f"{folder} (--model picks another)", file=sys.stderr)
    return folder


def cmd_generate(args: argparse.Namespace, root: Path) -> int:
    from pipeline import inference
    folder = _model(args, root, "CausalLM")
    print(inference.generate(folder, args.prompt, args.max_tokens, args.temperature, args.top_k or None, args.seed))
    return 0


def cmd_fill_mask(args: argparse.Namespace, root: Path) -> int:
    from pipeline import inference
    folder = _model(args, root, "MaskedLM")
    if args.top_k is not None and json.loads((folder / "meta.json").read_text()).get("model_class") == "Seq2SeqLM":
        print(f"lmforge fill-mask: --top-k {args.top_k} left aside: {folder} is an encoder-decoder, which writes one "
              "greedy span per mask (a masked LM gives its top pieces)", file=sys.stderr)
    for i, preds in enumerate(inference.fill_mask(folder, args.text, args.top_k or 5)):
        print(f"mask {i + 1}: " + ("  ".join(f"{piece!r} {p:.3f}" for piece, p in preds) if preds else
                                   "(the model wrote no span for it: it ended before this mask's sentinel)"))
    return 0


JSONL_SUFFIXES = (".jsonl", ".ndjson")
CHUNK = 256  # inputs predicted and printed at a time (stdin streams)


def _input_lines(args: argparse.Namespace) -> tuple[Any, str, bool]:
    """(the byte lines of --file, its name for messages, whether they are JSON Lines)."""
    if not args.file:
        return (), "", False
    if args.file == "-":
        return _stdin_lines(), "stdin", args.jsonl
    path = Path(args.file)
    if path.is_dir() or not path.exists():
        raise FileNotFoundError(f"--file: {path} {'is a folder' if path.exists() else 'does not exist'}")
    suffix = path.suffix.lower()
    if suffix == ".json" and not args.jsonl:
        raise ValueError(f"--file: {path} is .json; give JSON Lines (one object a line, .jsonl) or add --jsonl if "
                         "it is that")
    try:
        return open(path, "rb"), str(path), args.jsonl or suffix in JSONL_SUFFIXES
    except OSError as e:
        raise ValueError(f"--file: {path}: {e.strerror or e}") from None


def _stdin_lines() -> Any:
    """stdin's byte lines; from a pipe or a terminal as they come (``waiting_lines``), so each is answered
    without waiting for the end of the input."""
    import stat
    from pipeline.predict import waiting_lines
    try:
        fd = sys.stdin.fileno()
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except (OSError, ValueError):  # (a replaced sys.stdin without a descriptor)
        return sys.stdin.buffer
    return sys.stdin.buffer if regular else waiting_lines(fd)


def _say_run(folder: Path, run: dict[str, Any]) -> None:
    metric = run.get("metric")
    score = f"validation {metric} {run['best'][metric]:.4f}, best epoch {run['best_epoch']:g}" \
        if metric and "best" in run else "no result.json beside it"
    print(f"lmforge: task {run.get('task')!r}, run {run.get('method')}-{run.get('init')}-s{run.get('seed')} ({score}): "
          f"{folder}", file=sys.stderr)


def cmd_predict(args: argparse.Namespace, root: Path) -> int:
    from pipeline import predict
    notes: list[str] = []
    folder, run = predict.resolve(args.model, args.task, root / "data" / "work", notes)
    for note in notes:
        print(f"lmforge: {note}", file=sys.stderr)
    _say_run(folder, run)
    lines, source, jsonl = _input_lines(args)
    blank, done, cut = [0], 0, 0
    try:
        examples = predict.read_inputs(args.texts, lines, source, run.get("kind") or "classification", jsonl, blank)
        first = next((ex for ex in examples if ex is not None), None)
        if first is None:
            raise ValueError("nothing to predict: give texts, or --file with one text a line"
                             + (f" ({source} has {blank[0]} blank line(s) only)" if blank[0] else ""))
        model = predict.Predictor(folder)
        chunk = [first]
        for ex in examples:
            if ex is not None:
                chunk.append(ex)
            if chunk and (ex is None or len(chunk) == CHUNK):  # a full chunk, or no more input waiting
                done, cut = _emit(model(chunk), args.json, done, cut)
                chunk = []
        if chunk:
            done, cut = _emit(model(chunk), args.json, done, cut)
    except BrokenPipeError:  # (| head): the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        if args.file and args.file != "-":
            lines.close()
    if cut:
        print(f"lmforge: {cut} of {done} input(s) cut at max_len {model.meta['max_len']} tokens, as in training",
              file=sys.stderr)
    if blank[0]:
        print(f"lmforge: {blank[0]} blank line(s) of {source} skipped (--json gives each prediction its line)",
              file=sys.stderr)
    return 0


def _emit(preds: list[dict[str, Any]], as_json: bool, done: int, cut: int) -> tuple[int, int]:
    from pipeline.predict import render
    for p in preds:
        print(json.dumps(p, ensure_ascii=False) if as_json else render(p))
    sys.stdout.flush()
    return done + len(preds), cut + sum(p["truncated"] for p in preds)


COMMANDS = {"generate": cmd_generate, "fill-mask": cmd_fill_mask, "predict": cmd_predict}
