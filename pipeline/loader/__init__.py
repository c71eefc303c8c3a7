"""Reading token shards for training: zero-copy streams and (seed, step)-addressed batches.

Imports numpy, pyarrow and torch only (plus ``pipeline.tokenize.shards`` for the format), so the trainer
runs where neither prefect nor mlflow is installed::

    train = TokenShards("data/work/tokenize/<key>", "train")
    batches = CausalBatches(train, block_size=256, batch_size=64, seed=0)
    x, y = batches.get(step)                     # same (seed, step) -> same batch, in any process
    for b in TokenShards(folder, "val").val_batches(256, 64):
        ...                                      # b.x, b.y, b.n_targets, b.n_bytes (bits per byte)
"""
from pipeline.loader.batches import CausalBatches, MaskedBatches, WindowSampler
from pipeline.loader.spans import SpanBatches
from pipeline.loader.stream import IGNORE_INDEX, EvalBatch, TokenShards

__all__ = ["TokenShards", "CausalBatches", "MaskedBatches", "SpanBatches", "WindowSampler", "EvalBatch", "IGNORE_INDEX"]
