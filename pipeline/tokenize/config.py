"""Tokenize configuration: the sentencepiece model to train (or reuse) and the token shards to write."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pipeline.configtypes import SEED_LIMIT, ConfigError, bounded

N_FIXED_SPECIALS = 7  # <pad> <unk> <s> </s> <mask> <sep> <cls>
N_BYTE_PIECES = 256


@dataclass(frozen=True)
class TokenizeConfig:
    # Unigram by default: on this project's corpora it encodes 5-7x faster than BPE with sentencepiece
    # and packs more bytes per token (bench/tokenize.py prints both).
    model_type: Literal["bpe", "unigram"] = "unigram"
    vocab_size: int = bounded(8192, ge=300, le=1 << 20)
    # None = auto: 1.0 (every character a piece) for small alphabets; 0.9995 when CJK characters are
    # >= 5% of the sample's letters or there are more distinct characters than half the learnable
    # vocabulary, training then on the most frequent ones only (see tokenize.train.auto_coverage).
    character_coverage: float | None = bounded(None, gt=0.9, le=1.0)
    sentinels: int = bounded(32, ge=0, le=1000)  # <extra_id_0> ... for span-corruption objectives
    seed: int = bounded(0, ge=0, lt=SEED_LIMIT)  # the train/val split and the training sample (sentencepiece: 32 bits)
    val_fraction: float = bounded(0.05, ge=0.0, lt=1.0)  # of split keys (near-dup clusters or docs); pretraining
    # needs validation text (its loss picks the best checkpoint): 0 only for tokens that something else scores
    shard_tokens: int = bounded(8 << 20, ge=1, le=1 << 30)  # a shard closes before it would exceed this
    sample_bytes: int = bounded(100_000_000, ge=1)  # UTF-8 bytes of train docs sampled to train on
    input_sentence_size: int = bounded(2_000_000, ge=1)  # lines sentencepiece keeps from the sample
    max_sentence_length: int = bounded(16384, ge=64)  # bytes; longer lines are cut at spaces first
    train_threads: int = bounded(2, ge=1, le=256)  # unigram's pieces depend on it: part of the key
    tokenizer_path: str | None = None  # reuse: a .model file, or a folder holding tokenizer.model

    def __post_init__(self) -> None:
        need = N_FIXED_SPECIALS + self.sentinels + N_BYTE_PIECES + 1
        if self.tokenizer_path is None and self.vocab_size < need:
            raise ConfigError(f"tokenize.vocab_size: got {self.vocab_size}, allowed: >= {need} "
                              f"({N_FIXED_SPECIALS} special + {self.sentinels} sentinel + "
                              f"{N_BYTE_PIECES} byte pieces + 1)")
