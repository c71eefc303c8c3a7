"""Training the sentencepiece model: a deterministic, bounded sample of the train split, and its options.

Determinism: sentencepiece writes the same model bytes for the same sentences, options and
``num_threads`` (checked in tests). Unigram's pieces change with the thread count, so it is a config field
(``train_threads``), not the run's worker count. Training reads the sample from memory
(``sentence_iterator``) and writes to memory (``model_writer``), so no temporary path ends up in the model.

The sample: the train documents whose keyed hash falls below ``sample_bytes / train bytes``, in input
order, split into lines (the trainer sees lines, which is also why no learned piece holds a newline; see
``segment``). Lines longer than ``max_sentence_length`` bytes are cut at spaces (else hard) rather than
skipped by the trainer. Validation documents are never sampled.
"""
from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow.compute as pc
import sentencepiece as spm

from pipeline.tokenize import segment
from pipeline.tokenize.config import N_BYTE_PIECES, N_FIXED_SPECIALS, TokenizeConfig
from pipeline.tokenize.scripts import SCRIPTS, byte_classes
from pipeline.tokenize.read import iter_kept
from pipeline.tokenize.split import SplitPlan, key_hash
from pipeline.tokenize.tokenizer import NAMED_SPECIALS, Tokenizer, sentinel

CJK_SHARE_FOR_PARTIAL_COVERAGE = 0.05
CHAR_STATS_LIMIT = 10_000_000  # characters looked at to count the inventory


class TokenizerTrainingError(ValueError):
    """No model can be trained: no text in the train split, or options sentencepiece refuses."""


def bounded_lines(text: str, max_chars: int) -> Iterator[str]:
    for line in text.split("\n"):
        if not line:
            continue
        for piece in segment.chunks(line, max_chars):
            for i in range(0, len(piece), max_chars):  # no space to cut at: hard cut
                yield piece[i:i + max_chars]


def train_bytes(folder: Path, plan: SplitPlan) -> int:
    total, pos = 0, 0
    for table in iter_kept(folder, ["text"]):
        sizes = pc.fill_null(pc.binary_length(table.column("text")), 0).to_numpy(zero_copy_only=False)
        total += int(sizes[~plan.is_val[pos:pos + table.num_rows]].sum())
        pos += table.num_rows
    return total


def training_sample(folder: Path, plan: SplitPlan, cfg: TokenizeConfig) -> list[str]:
    rate = min(1.0, cfg.sample_bytes / max(1, train_bytes(folder, plan)))
    max_chars = cfg.max_sentence_length // 4  # UTF-8 takes at most 4 bytes a character
    lines: list[str] = []
    pos = 0
    for table in iter_kept(folder, ["doc_id", "text"]):
        is_val = plan.is_val[pos:pos + table.num_rows]
        pos += table.num_rows
        for doc_id, text, val in zip(table.column("doc_id").to_pylist(), table.column("text").to_pylist(), is_val):
            if val or not text:
                continue
            if rate < 1.0 and key_hash(cfg.seed, f"sample:{doc_id}") / 2.0**64 >= rate:
                continue
            lines.extend(bounded_lines(text, max_chars))
    if not lines:
        raise TokenizerTrainingError(f"cannot train a tokenizer: the {plan.docs('train')} train document(s) "
                                     "hold no text")
    return lines


def char_counts(lines: list[str], limit: int = CHAR_STATS_LIMIT) -> tuple[np.ndarray, np.ndarray]:
    """Code points and their counts over (an evenly strided subset of) the sample, most frequent first."""
    total = sum(map(len, lines))
    stride = max(1, -(-total // limit))
    text = "".join(lines[::stride])
    points, counts = np.unique(np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32), return_counts=True)
    order = np.lexsort((points, -counts))  # ties broken by code point: deterministic
    return points[order], counts[order]


def auto_coverage(lines: list[str], cfg: TokenizeConfig) -> tuple[float, str | None, dict[str, Any]]:
    """Character coverage for the sample's scripts, and the characters to train on when they are too many.

    Returns (coverage, kept characters or None, figures). 1.0 when the sample is not CJK-heavy and has
    at most ``budget`` distinct characters (half the learnable vocabulary); else 0.9995 and, when there are
    more than ``budget`` characters, only the ``budget`` most frequent ones are trained on: sentencepiece
    needs every character within the coverage as a piece and refuses a coverage below 0.98, so a large
    character inventory would otherwise fail or leave no room for merges. The rest fall back to bytes.
    """
    points, counts = char_counts(lines)
    classes = byte_classes(np.frombuffer("".join(lines[:: max(1, len(lines) // 100_000)]).encode("utf-8"),
                                        dtype=np.uint8))
    shares = {s: float(c / max(1, classes.sum())) for s, c in zip(SCRIPTS, classes)}
    budget = (cfg.vocab_size - N_FIXED_SPECIALS - cfg.sentinels - N_BYTE_PIECES) // 2
    partial = shares["cjk"] >= CJK_SHARE_FOR_PARTIAL_COVERAGE or len(points) > budget
    keep = None
    if len(points) > budget:
        kept = [chr(p) for p in points[:budget]]
        keep = "".join(sorted(set(kept) | {" "}))
    info = {"script_shares": shares, "distinct_chars": int(len(points)), "char_budget": budget,
            "chars_kept": len(keep) if keep is not None else int(len(points)),
            "kept_char_share": float(counts[:budget].sum() / max(1, counts.sum()))}
    return (0.9995 if partial else 1.0), keep, info


def keep_only(lines: list[str], keep: str) -> list[str]:
    """Cut lines at characters outside ``keep`` (they are left to byte fallback)."""
    other = re.compile("[^" + "".join(re.escape(c) for c in keep) + "]+")
    return [seg for line in lines for seg in other.split(line) if seg]


def trainer_options(cfg: TokenizeConfig, coverage: float) -> dict[str, Any]:
    symbols = list(NAMED_SPECIALS.values()) + [sentinel(i) for i in range(cfg.sentinels)]
    return dict(
        model_type=cfg.model_type, vocab_size=cfg.vocab_size, character_coverage=coverage,
        byte_fallback=True, split_digits=True, normalization_rule_name="identity",
        remove_extra_whitespaces=False, add_dummy_prefix=False, allow_whitespace_only_pieces=True,
        split_by_whitespace=True, input_sentence_size=cfg.input_sentence_size, shuffle_input_sentence=True,
        max_sentence_length=cfg.max_sentence_length, num_threads=cfg.train_threads,
        pad_id=0, unk_id=1, bos_id=2, eos_id=3, user_defined_symbols=symbols,
        hard_vocab_limit=False,  # a small corpus gets a smaller vocabulary instead of an error
        minloglevel=2,
    )


def train_model(lines: list[str], options: dict[str, Any], seed: int) -> bytes:
    spm.set_random_generator_seed(seed)
    writer = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=writer, **options)
    except RuntimeError as e:  # e.g. an explicit character_coverage needing more pieces than vocab_size
        raise TokenizerTrainingError(
            f"sentencepiece could not train a {options['model_type']} model (vocab_size "
            f"{options['vocab_size']}, character_coverage {options['character_coverage']}) on "
            f"{len(lines)} lines: {e}") from e
    return writer.getvalue()


def vocab_text(tok: Tokenizer) -> str:
    """``tokenizer.vocab``: one ``piece<TAB>score`` line per id, like sentencepiece's own file."""
    return "".join(f"{tok.pieces[i]}\t{tok.sp.get_score(i):g}\n" for i in range(tok.vocab_size))
