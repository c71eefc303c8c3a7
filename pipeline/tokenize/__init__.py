"""Tokenize stage: a sentencepiece tokenizer and memory-mappable Arrow token shards (train / val).

``Tokenizer`` (encode / decode / special ids) needs only sentencepiece and numpy; the shard format in
``tokenize.shards`` needs only numpy and pyarrow. ``pipeline.loader`` reads the shards for training.
"""
from pipeline.tokenize.config import TokenizeConfig
from pipeline.tokenize.stage import TokenizeError, run
from pipeline.tokenize.tokenizer import Tokenizer

VERSION = "1"
__all__ = ["VERSION", "TokenizeConfig", "TokenizeError", "Tokenizer", "run"]
