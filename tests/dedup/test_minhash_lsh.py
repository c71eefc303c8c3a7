"""Signature parity with datasketch, LSH parameters, band keys and candidate pairs."""
from __future__ import annotations

import numpy as np
import pytest
from datasketch import MinHash
from datasketch.lsh import _optimal_param

from pipeline.dedup import DedupConfig, lsh_params, minhash
from pipeline.dedup.lsh import band_hashes, candidate_pairs, s_curve
from pipeline.dedup.shingles import ShingleSpec, shingle_hashes


def _datasketch_sig(hashes: np.ndarray, num_perm: int, seed: int, scheme: str) -> np.ndarray:
    m = MinHash(num_perm=num_perm, seed=seed, scheme=scheme, hashfunc=lambda x: x)
    if len(hashes):
        m.update_batch(hashes.tolist())
    return m.hashvalues


@pytest.mark.parametrize("scheme", ["affine32", "legacy"])
def test_signatures_equal_datasketch_hashvalues(scheme):
    texts = ["The quick brown fox jumps over the lazy dog near the river bank today.",
             "床前明月光，疑是地上霜。举头望明月，低头思故乡。", "", "two words"]
    sh = shingle_hashes(texts, ShingleSpec())
    rng = np.random.default_rng(0)
    long_doc = rng.integers(0, 2**32, 40_000, dtype=np.uint64).astype(np.uint32)  # spans 3 chunks
    hashes = np.concatenate([sh.hashes, long_doc])
    offsets = np.concatenate([sh.offsets, [len(hashes)]])
    sig = minhash.signatures(hashes, offsets, minhash.permutations(64, 7, scheme), scheme)
    assert sig.shape == (5, 64) and sig.dtype == np.uint32
    for i in range(5):
        expected = _datasketch_sig(hashes[offsets[i]:offsets[i + 1]], 64, 7, scheme)
        assert np.array_equal(sig[i], expected.astype(np.uint32)) and int(expected.max()) <= 0xFFFFFFFF, i
    assert (sig[2] == 0xFFFFFFFF).all()  # no shingles: datasketch's empty state


def test_signature_agreement_estimates_jaccard():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 2**32, 2000, dtype=np.uint64).astype(np.uint32)
    b = np.concatenate([a[:1500], rng.integers(0, 2**32, 500, dtype=np.uint64).astype(np.uint32)])
    sig = minhash.signatures(np.concatenate([a, b]), np.array([0, 2000, 4000]),
                             minhash.permutations(1024, 1, "affine32"), "affine32")
    true_j = 1500 / 2500
    assert abs(np.mean(sig[0] == sig[1]) - true_j) < 0.05


def test_default_params_come_from_datasketch_optimiser_with_fn_weighted():
    cfg = DedupConfig()
    assert lsh_params(cfg) == _optimal_param(0.8, 128, 0.02, 0.98) == (17, 7)
    assert s_curve(0.8, 17, 7) > 0.98  # recall-first: P(candidate) at the threshold
    assert lsh_params(DedupConfig(bands=8, rows=16)) == (8, 16)


def test_band_keys_equal_exactly_when_band_slices_equal():
    sig = np.array([[1, 2, 3, 4, 5, 6], [1, 2, 3, 9, 9, 9], [0, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6]],
                   dtype=np.uint32)
    keys = band_hashes(sig, bands=2, rows=3)
    assert keys.shape == (4, 2) and keys.dtype == np.uint64
    assert keys[0, 0] == keys[1, 0] == keys[3, 0] != keys[2, 0]
    assert keys[0, 1] == keys[2, 1] == keys[3, 1] != keys[1, 1]
    assert keys[0, 0] != keys[0, 1]  # the band index is part of the key


def test_candidate_pairs_and_bucket_window():
    # Band 0: docs 10, 11, 12, 13 share a bucket; band 1: docs 10 and 14 share one.
    keys = np.array([[5, 1], [5, 2], [5, 3], [5, 4], [6, 1]], dtype=np.uint64)
    members = np.array([10, 11, 12, 13, 14])
    all_pairs = candidate_pairs(keys, members, window=64)
    assert all_pairs.tolist() == [[10, 11], [10, 12], [10, 13], [10, 14], [11, 12], [11, 13], [12, 13]]
    near = candidate_pairs(keys, members, window=1)  # each doc with the next one of its bucket only
    assert near.tolist() == [[10, 11], [10, 14], [11, 12], [12, 13]]
    assert candidate_pairs(keys[:0], members[:0], window=4).shape == (0, 2)
