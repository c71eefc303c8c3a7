"""Tokenize stage: a sentencepiece tokenizer and memory-mappable Arrow token shards (train / val).

``Tokenizer`` (encode / decode / special ids) needs only sentencepiece and numpy; the shard format in
``tokenize.shards`` needs only numpy and pyarrow. ``pipeline.loader`` reads the shards for training.
The stage code loads on first use of ``run`` (keys and configs stay cheap to compute).
"""
from pipeline.lazy import stage_exports
from pipeline.tokenize.config import TokenizeConfig

VERSION = "1"
__all__ = ["VERSION", "TokenizeConfig", "TokenizeError", "Tokenizer", "run"]
__getattr__ = stage_exports(__name__, {"run", "TokenizeError"}, elsewhere={"Tokenizer": "tokenizer"})
