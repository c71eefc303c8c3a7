"""Metrics against hand-computed cases (CoNLL span definition: exact start, end and type)."""
from __future__ import annotations

import pytest

from pipeline.tasks.metrics import accuracy, macro_f1, per_label_prf, span_counts, span_f1, spans


def test_accuracy_and_macro_f1_by_hand():
    gold = ["a", "a", "b", "c"]
    pred = ["a", "b", "b", "b"]
    assert accuracy(gold, pred) == 0.5
    # a: p=1 r=.5 f=2/3; b: p=1/3 r=1 f=.5; c: p=0 r=0 f=0 -> mean 7/18
    assert macro_f1(gold, pred) == pytest.approx((2 / 3 + 0.5 + 0) / 3)
    assert per_label_prf(gold, pred)["b"] == pytest.approx({"precision": 1 / 3, "recall": 1.0, "f1": 0.5, "support": 1})
    # a label list adds a never-seen class with F1 0
    assert macro_f1(gold, pred, ["a", "b", "c", "d"]) == pytest.approx((2 / 3 + 0.5) / 4)


def test_bio_spans_and_lenient_starts():
    assert spans(["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-ORG"]) == [
        ("PER", 0, 1), ("LOC", 3, 3), ("LOC", 4, 4), ("ORG", 5, 5)]
    # conlleval: an I- after O starts a chunk; a type change inside I- ends one
    assert spans(["O", "I-PER", "I-PER", "I-LOC"]) == [("PER", 1, 2), ("LOC", 3, 3)]


def test_span_f1_partial_overlap_counts_as_error():
    gold = [["B-PER", "I-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "O", "B-LOC"], ["B-ORG", "B-MISC"]]
    s = span_f1(gold, pred, "BIO")
    # gold: PER(0-2), LOC(4), ORG(0) = 3; pred: PER(0-1) wrong end, LOC ok, ORG ok, MISC spurious = 4
    assert (s["n_gold"], s["n_pred"], s["n_correct"]) == (3, 4, 2)
    assert s["precision"] == pytest.approx(0.5)
    assert s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert s["per_type"]["PER"]["f1"] == 0.0
    assert s["per_type"]["LOC"]["f1"] == 1.0
    assert s["per_type"]["MISC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    # per sentence (correct, predicted, gold): they add up to the totals, and F1 = 2 * 2 / (4 + 3)
    assert span_counts(gold, pred, "BIO") == [(1, 2, 2), (1, 2, 1)]
    assert s["f1"] == pytest.approx(2 * 2 / (4 + 3))


def test_span_f1_wrong_type_same_boundaries_is_error():
    s = span_f1([["B-PER", "I-PER"]], [["B-ORG", "I-ORG"]])
    assert (s["n_correct"], s["f1"]) == (0, 0.0)


def test_bioes_and_bmes():
    gold = [["S-PER", "O", "B-LOC", "I-LOC", "E-LOC", "S-ORG"]]
    pred = [["S-PER", "O", "B-LOC", "E-LOC", "O", "S-ORG"]]
    assert spans(gold[0], "BIOES") == [("PER", 0, 0), ("LOC", 2, 4), ("ORG", 5, 5)]
    s = span_f1(gold, pred, "BIOES")
    assert (s["n_gold"], s["n_pred"], s["n_correct"]) == (3, 3, 2)
    assert s["f1"] == pytest.approx(2 / 3)
    bmes = [["B-LOC", "M-LOC", "E-LOC", "S-PER"]]
    assert spans(bmes[0], "BMES") == [("LOC", 0, 2), ("PER", 3, 3)]
    assert span_f1(bmes, bmes, "BMES")["f1"] == 1.0
    # E- then S- of the same type are two entities, not one
    assert spans(["B-X", "E-X", "S-X"], "BIOES") == [("X", 0, 1), ("X", 2, 2)]


def test_span_f1_rejects_misaligned_sequences():
    with pytest.raises(ValueError, match="sequence 0 has 2 gold tags but 1 predicted"):
        span_f1([["O", "O"]], [["O"]])
