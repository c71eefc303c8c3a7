"""Tokenization for tasks: first-sub-token labels, layouts, truncation counts, collation."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.finetune.encode import IGNORE, class_weights, collate, encode, train_batches
from pipeline.finetune.scoring import predict


def test_tagging_labels_on_first_sub_token_only(tokenizer):
    words = ["the", "zqxjkv", "parse", "Gammaxyz"]  # unseen words split into several pieces
    ex = {"tokens": words, "tags": ["O", "B-X", "I-X", "B-X"], "origin": "t:1"}
    enc = encode([ex], "tagging", ["O", "B-X", "I-X"], tokenizer, "decoder", max_len=64)
    ids, lab, first = enc.ids[0], enc.labels[0], enc.first[0]
    pieces = [tokenizer.encode(w if i == 0 else " " + w) for i, w in enumerate(words)]
    assert any(len(p) > 1 for p in pieces)
    assert ids.tolist() == sum(pieces, [])  # a decoder gets no </s> (see special_layout)
    starts = np.cumsum([0] + [len(p) for p in pieces[:-1]])
    assert first.tolist() == starts.tolist()
    expected = np.full(len(ids), IGNORE)
    expected[starts] = [0, 1, 2, 1]
    assert lab.tolist() == expected.tolist()
    assert tokenizer.decode(ids) == " ".join(words)  # same pieces as the running text
    assert enc.truncated == 0


def test_tagging_truncation_marks_lost_words(tokenizer):
    words = ["message"] * 30
    ex = {"tokens": words, "tags": ["O"] * 30, "origin": "t:1"}
    enc = encode([ex], "tagging", ["O"], tokenizer, "encoder", max_len=12)
    assert len(enc.ids[0]) == 12 and enc.truncated == 1 and enc.cut == {0}
    assert enc.ids[0][0] == tokenizer.cls_id and enc.ids[0][-1] == tokenizer.eos_id
    kept = enc.first[0] >= 0
    assert kept.sum() == (enc.labels[0] != IGNORE).sum() and kept.sum() < 30
    assert (enc.first[0][kept] < 11).all() and (enc.first[0][~kept] == -1).all()


def test_words_lost_to_truncation_are_predicted_o_wherever_the_label_list_puts_it(tokenizer):
    """A user's tag list need not start with O: a cut-off word must not become a B-X entity."""
    labels = ["B-X", "I-X", "O"]
    ex = {"tokens": ["message"] * 30, "tags": ["O"] * 30, "origin": "t:1"}
    enc = encode([ex], "tagging", labels, tokenizer, "decoder", max_len=8)
    assert enc.outside == 2

    class AllB(torch.nn.Module):  # predicts B-X at every position
        def forward(self, idx, mask, lab):
            logits = torch.zeros(*idx.shape, len(labels))
            logits[..., 0] = 1.0
            return logits, torch.tensor(0.0)

    preds, _ = predict(AllB(), enc, True, 0, batch_size=4)
    kept = int((enc.first[0] >= 0).sum())
    assert 0 < kept < 30
    assert preds[0] == [0] * kept + [2] * (30 - kept)


def test_validation_loss_skips_a_batch_with_no_labelled_position():
    """Such a batch's mean loss is NaN (0 / 0), and NaN x 0 made the whole validation loss NaN."""
    from model.layers import token_loss
    from pipeline.finetune.encode import Encoded
    enc = Encoded(ids=[np.array([5, 6]), np.array([7, 8, 9])],
                  labels=[np.array([IGNORE, IGNORE]), np.array([1, IGNORE, 0])],
                  first=[np.array([-1]), np.array([0, 2])], truncated=0)

    class Uniform(torch.nn.Module):  # two tags, equal odds: ln 2 at every labelled position
        def forward(self, idx, mask, lab):
            logits = torch.zeros(*idx.shape, 2)
            return logits, token_loss(logits, lab)

    _, loss = predict(Uniform(), enc, True, 0, batch_size=1)  # the first batch: row 0 alone, nothing labelled
    assert loss == pytest.approx(float(np.log(2)))


def test_classification_pairs_and_truncation(tokenizer):
    exs = [{"text": "parse the file", "text_pair": "socket error", "label": "b", "origin": "1"},
           {"text": "word " * 40, "text_pair": "x", "label": "a", "origin": "2"}]
    enc = encode(exs, "pair_classification", ["a", "b"], tokenizer, "decoder", max_len=16)
    a, b = tokenizer.encode("parse the file"), tokenizer.encode("socket error")
    assert enc.ids[0].tolist() == a + [tokenizer.sep_id] + b
    assert [int(x) for x in enc.labels] == [1, 0]
    assert len(enc.ids[1]) == 16 and enc.truncated == 1 and enc.cut == {1}  # which rows lost tokens
    x = tokenizer.encode("x")
    assert enc.ids[1][-len(x) - 1:].tolist() == [tokenizer.sep_id, *x]
    enc = encode(exs, "pair_classification", ["a", "b"], tokenizer, "encoder", max_len=16)
    assert enc.ids[0].tolist() == [tokenizer.cls_id, *a, tokenizer.sep_id, *b, tokenizer.eos_id]


def test_collate_pads_right_and_masks(tokenizer):
    exs = [{"text": "a", "label": "a", "origin": "1"}, {"text": "list dict string", "label": "b", "origin": "2"}]
    enc = encode(exs, "classification", ["a", "b"], tokenizer, "decoder", max_len=32)
    idx, mask, lab = collate(enc, [0, 1], pad_id=0, tagging=False)
    n0, n1 = len(enc.ids[0]), len(enc.ids[1])
    assert idx.shape == (2, max(n0, n1))
    assert mask.sum(dim=1).tolist() == [n0, n1]
    assert (idx[0, n0:] == 0).all() and lab.tolist() == [0, 1]
    w = class_weights(enc, 3)
    assert w.tolist() == pytest.approx([2 / 3, 2 / 3, 1.0])  # N / (K * count); an unseen class gets 1


def test_train_batches_cover_every_row_once_with_similar_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 60, size=1000)
    batches = list(train_batches(lengths, 16, seed=1, epoch=2, bucket=8))
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == list(range(1000)) and len(batches) == 63  # ceil(1000 / 16)
    assert [len(b) for b in batches].count(16) == 62
    spread = np.mean([lengths[b].max() - lengths[b].min() for b in batches])
    assert spread < 15  # a random batch of 16 spans ~50
    again = list(train_batches(lengths, 16, seed=1, epoch=2, bucket=8))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))
    other = list(train_batches(lengths, 16, seed=1, epoch=3, bucket=8))
    assert not all(np.array_equal(a, b) for a, b in zip(batches, other))
