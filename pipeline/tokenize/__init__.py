"""Tokenize stage: a sentencepiece tokenizer and memory-mappable Arrow token shards (train / val).

``Tokenizer`` (encode / decode / special ids) needs only sentencepiece and numpy; the shard format in
``tokenize.shards`` needs only numpy and pyarrow. ``pipeline.loader`` reads the shards for training.
The stage code loads on first use of ``run`` (keys and configs stay cheap to compute).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.configtypes import BY_CONTENT, ConfigError, config_path, to_dict
from pipeline.lazy import stage_exports
from pipeline.store import files_fingerprint
from pipeline.tokenize.config import TokenizeConfig

VERSION = "1"
__all__ = ["VERSION", "TokenizeConfig", "TokenizeError", "Tokenizer", "run", "fingerprint", "resolve_model_path"]


def resolve_model_path(path: str, root: Path) -> Path:
    """The model file ``tokenize.tokenizer_path`` names: the file itself, or ``tokenizer.model`` in the
    folder (or in its ``tokenizer/``, as a pretrained model folder holds it); relative to the project root."""
    p = config_path(root, path)
    for candidate in (p, p / "tokenizer.model", p / "tokenizer" / "tokenizer.model"):
        if candidate.is_file():
            return candidate
    raise ConfigError(f"tokenize.tokenizer_path: no tokenizer model at {p} "
                      f"(nor {p / 'tokenizer.model'} or {p / 'tokenizer' / 'tokenizer.model'})")


TRAINING_KEYS = ("model_type", "vocab_size", "character_coverage", "sentinels", "sample_bytes", "input_sentence_size",
                 "max_sentence_length", "train_threads")  # what only training a tokenizer reads


def key_config(cfg: TokenizeConfig, run_cfg: Any = None) -> dict[str, Any]:
    """The config in the stage's key: with ``tokenizer_path`` set, not the training options (unused), and the
    reused model by content (``fingerprint``), not by how its path is spelled."""
    d = to_dict(cfg)
    if cfg.tokenizer_path is None:
        return d
    return {**{k: v for k, v in d.items() if k not in TRAINING_KEYS}, "tokenizer_path": BY_CONTENT}


def fingerprint(cfg: TokenizeConfig, root: Path) -> str | None:
    """What the reused tokenizer model file holds now (its content digest), so that a replaced file means a new
    key; None when the stage trains its own (nothing outside the store: the key stays as it was).
    A missing model is a ConfigError here, at planning, not hours later when the stage runs."""
    if cfg.tokenizer_path is None:
        return None
    path = resolve_model_path(cfg.tokenizer_path, root)
    import sentencepiece as spm
    try:
        size = spm.SentencePieceProcessor(model_proto=path.read_bytes()).vocab_size()
    except RuntimeError:
        size = 0
    if size == 0:  # (an empty file loads as a model of no pieces)
        raise ConfigError(f"tokenize.tokenizer_path: {path} is not a sentencepiece model file")
    return files_fingerprint([path])


__getattr__ = stage_exports(__name__, {"run", "TokenizeError"}, elsewhere={"Tokenizer": "tokenizer"})
