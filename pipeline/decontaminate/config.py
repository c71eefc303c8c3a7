"""Decontaminate configuration: which evaluation texts to protect and how long a shared n-gram must be."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pipeline.configtypes import ConfigError, bounded

Split = Literal["train", "validation", "test"]


@dataclass(frozen=True)
class DecontaminateConfig:
    """A document is contaminated when it shares a word ``word_ngram``-gram (or, in scripts written without
    spaces, a character ``char_ngram``-gram) with an evaluation text of a configured task, both normalized
    (lowercase, punctuation and diacritics removed, digits folded to 0, whitespace collapsed).

    An evaluation text shorter than the n-gram counts as a whole when it has at least ``min_words`` words
    (``min_chars`` characters): GPT-3's decontamination used the same lower bound of 8 words. Shorter texts
    are too common to mean anything ("a great movie") and are not protected.
    """
    word_ngram: int = bounded(13, ge=1, le=64)
    char_ngram: int = bounded(50, ge=1, le=256)
    min_words: int = bounded(8, ge=1)   # a shorter eval text matches as a whole from this many words
    min_chars: int = bounded(20, ge=1)  # … and from this many characters in unspaced scripts
    splits: list[Split] = field(default_factory=lambda: ["validation", "test"])
    held_out_units: bool = True  # also drop the ingest documents of the stdlib tasks' held-out modules/topics
    sample_docs: int = bounded(50, ge=0)    # contaminated documents shown in reports/contaminated_samples.json
    sample_chars: int = bounded(300, ge=10)  # characters of each document's text shown there

    def __post_init__(self) -> None:
        if len(set(self.splits)) != len(self.splits):
            raise ConfigError(f"decontaminate.splits: got {self.splits}, allowed: each split at most once")
