"""Loader: windows are slices of the concatenated stream, batches are a function of (seed, step), masking."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.loader import IGNORE_INDEX, CausalBatches, MaskedBatches, TokenShards
from pipeline.loader.batches import StepRandom, philox
from pipeline.tokenize.shards import read_meta

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def train(built) -> TokenShards:
    return TokenShards(built[0], "train")


def stream(shards: TokenShards) -> np.ndarray:
    return np.concatenate(shards.tokens)


def test_shards_open_as_zero_copy_views(built, train):
    meta = read_meta(built[0])
    split = meta["splits"]["train"]
    assert len(train.shards) == len(split["shards"]) >= 3
    assert train.n_tokens == split["tokens"] and train.n_bytes == split["bytes"] and train.n_docs == split["documents"]
    assert all(not t.flags.owndata for t in train.tokens)
    starts = train.doc_starts()
    assert len(starts) == train.n_docs and starts[0] == 0
    assert np.all(stream(train)[starts[1:] - 1] == meta["special_ids"]["eos"])  # every doc ends with EOS


def test_causal_windows_are_slices_of_the_stream(train):
    flat, T = stream(train), 50
    batches = CausalBatches(train, block_size=T, batch_size=16, seed=7)
    crossing = 0
    for step in range(40):
        x, y = batches.get(step)
        assert x.dtype == y.dtype == torch.int64 and x.shape == y.shape == (16, T)
        assert x.is_contiguous() and y.is_contiguous()
        for row, s in enumerate(batches.starts(step)):
            assert np.array_equal(x[row].numpy(), flat[s:s + T])
            assert np.array_equal(y[row].numpy(), flat[s + 1:s + T + 1])
            crossing += int(np.searchsorted(train.shard_starts, s, side="right")
                            != np.searchsorted(train.shard_starts, s + T, side="right"))
    assert crossing > 0  # windows across shard boundaries were exercised
    assert train.window(0, train.n_tokens).tolist() == flat.tolist()


def test_doc_aligned_windows_start_at_documents(train):
    batches = CausalBatches(train, block_size=20, batch_size=32, seed=1, doc_aligned=True)
    doc_starts = set(train.doc_starts().tolist())
    for step in range(10):
        assert set(batches.starts(step).tolist()) <= doc_starts


def test_same_seed_and_step_give_the_same_batch_in_another_process(built, train):
    x, y = CausalBatches(train, 32, 8, seed=11).get(1234)
    code = ("import sys, numpy as np; from pipeline.loader import TokenShards, CausalBatches\n"
            "x, y = CausalBatches(TokenShards(sys.argv[1], 'train'), 32, 8, seed=11).get(1234)\n"
            "sys.stdout.write(' '.join(map(str, x.flatten().tolist() + y.flatten().tolist())))\n")
    out = subprocess.run([sys.executable, "-c", code, str(built[0])], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    assert list(map(int, out.split())) == x.flatten().tolist() + y.flatten().tolist()
    x2, _ = CausalBatches(train, 32, 8, seed=11).get(1235)
    x3, _ = CausalBatches(train, 32, 8, seed=12).get(1234)
    assert not torch.equal(x, x2) and not torch.equal(x, x3)


def test_step_random_is_philox_at_counter_step():
    fast = StepRandom(seed=9)
    for step in (0, 1, 12345, 2**40):
        assert np.array_equal(fast.raw(step, 70), philox(9, step).random_raw(70))
    assert not np.array_equal(fast.raw(1, 8), fast.raw(2, 8)[:8])


def test_val_batches_cover_every_target_once(built):
    val = TokenShards(built[0], "val")
    flat, T, B = stream(val), 24, 4
    targets, n_bytes, batches = [], 0, list(val.val_batches(T, B))
    for b in batches:
        assert b.x.shape == b.y.shape == (B, T)
        valid = b.y != IGNORE_INDEX
        assert b.n_targets == int(valid.sum())
        targets += b.y[valid].tolist()
        n_bytes += b.n_bytes
    assert targets == flat[1:].tolist()
    assert n_bytes == val.n_bytes - int(val.token_bytes[flat[0]])  # the first token is never a target
    assert len(batches) == math.ceil(math.ceil((val.n_tokens - 1) / T) / B)
    assert len(list(val.val_batches(T, B, max_batches=1))) == 1


def test_masking_statistics_and_specials(built, train):
    meta = read_meta(built[0])
    specials = np.array(meta["all_special_ids"])
    mb = MaskedBatches(train, block_size=64, batch_size=64, seed=5, mask_rate=0.15)
    chosen = maskable = masked = randomized = kept = 0
    for step in range(30):
        x, labels = (t.numpy() for t in mb.get(step))
        original = np.stack([train.window(int(s), 64) for s in mb.starts(np.random.Generator(philox(5, step)))])
        sel = labels != IGNORE_INDEX
        assert np.array_equal(labels[sel], original[sel])
        is_special = np.isin(original, specials)
        assert not (sel & is_special).any() and np.array_equal(x[is_special], original[is_special])
        assert np.array_equal(x[~sel], original[~sel])
        assert not np.isin(x[sel & (x != mb.mask_id)], specials).any()
        chosen += sel.sum()
        maskable += (~is_special).sum()
        masked += (x[sel] == mb.mask_id).sum()
        changed = sel & (x != original) & (x != mb.mask_id)
        randomized += changed.sum()
        kept += (sel & (x == original)).sum()
    assert abs(chosen / maskable - 0.15) < 0.01
    assert abs(masked / chosen - 0.8) < 0.02
    assert abs((randomized + kept) / chosen - 0.2) < 0.02  # a random id may equal the original
    assert abs(kept / chosen - 0.1) < 0.02
    x1, l1 = mb.get(3)
    x2, l2 = MaskedBatches(train, 64, 64, seed=5).get(3)
    assert torch.equal(x1, x2) and torch.equal(l1, l2)


def test_too_short_split_is_a_clear_error(built):
    val = TokenShards(built[0], "val")
    with pytest.raises(ValueError, match="fewer than one window"):
        CausalBatches(val, block_size=val.n_tokens, batch_size=2, seed=0)


def test_loader_and_tokenizer_import_without_prefect_or_mlflow():
    code = ("import sys\n"
            "for name in ('prefect', 'mlflow', 'xxhash', 'matplotlib'): sys.modules[name] = None\n"
            "import pipeline.loader, pipeline.tokenize.tokenizer, pipeline.tokenize.shards\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
