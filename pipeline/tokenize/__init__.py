"""Tokenize stage: a sentencepiece tokenizer and memory-mappable Arrow token shards (train / val).

``Tokenizer`` (encode / decode / special ids) needs only sentencepiece and numpy; the shard format in
``tokenize.shards`` needs only numpy and pyarrow. ``pipeline.loader`` reads the shards for training.
The stage code loads on first use of ``run`` (keys and configs stay cheap to compute).
"""
import importlib

from pipeline.tokenize.config import TokenizeConfig

VERSION = "1"
__all__ = ["VERSION", "TokenizeConfig", "TokenizeError", "Tokenizer", "run"]


def __getattr__(name: str):
    if name == "Tokenizer":
        from pipeline.tokenize.tokenizer import Tokenizer
        return Tokenizer
    if name in ("run", "TokenizeError"):
        return getattr(importlib.import_module("pipeline.tokenize.stage"), name)
    raise AttributeError(f"module 'pipeline.tokenize' has no attribute {name!r}")
