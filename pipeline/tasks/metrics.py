"""Task metrics: accuracy, macro-F1, and entity-level (span) precision / recall / F1.

Span F1 follows CoNLL's ``conlleval`` (and seqeval's default mode): a chunk starts at B-/S-, or at an
I-/E- (M- in BMES) that follows O, an end tag or another type; it ends before O, B-, S- or a type
change, or at E-/S-. A predicted chunk counts only if its start, end and type all equal a gold chunk's,
so a partial overlap is one false positive and one false negative.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterator, Sequence

Span = tuple[str, int, int]  # (type, first word, last word), both inclusive


def accuracy(gold: Sequence, pred: Sequence) -> float:
    if len(gold) != len(pred):
        raise ValueError(f"accuracy: {len(gold)} gold labels but {len(pred)} predictions")
    return sum(g == p for g, p in zip(gold, pred)) / len(gold) if gold else 0.0


def _prf(tp: int, n_pred: int, n_gold: int) -> dict[str, float]:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def per_label_prf(gold: Sequence, pred: Sequence, labels: Sequence | None = None) -> dict:
    """label -> {precision, recall, f1, support}; labels default to those in gold or pred (sorted)."""
    if len(gold) != len(pred):
        raise ValueError(f"per_label_prf: {len(gold)} gold labels but {len(pred)} predictions")
    labels = sorted(set(gold) | set(pred), key=str) if labels is None else list(labels)
    tp = Counter(g for g, p in zip(gold, pred) if g == p)
    n_gold, n_pred = Counter(gold), Counter(pred)
    return {lab: {**_prf(tp[lab], n_pred[lab], n_gold[lab]), "support": n_gold[lab]} for lab in labels}


def macro_f1(gold: Sequence, pred: Sequence, labels: Sequence | None = None) -> float:
    """Unweighted mean of per-label F1 over ``labels`` (default: labels in gold or pred, as sklearn)."""
    table = per_label_prf(gold, pred, labels)
    return sum(v["f1"] for v in table.values()) / len(table) if table else 0.0


def _split_tag(tag: str, scheme: str) -> tuple[str, str]:
    if tag in ("O", "", "-"):
        return "O", ""
    prefix, _, typ = tag.partition("-")
    if not typ:  # a bare type ("PER") is an inside tag of that type (IO tagging)
        return "I", tag
    prefix = prefix.upper()
    if scheme == "BMES" and prefix == "M":
        prefix = "I"
    if prefix not in ("B", "I", "E", "S"):
        raise ValueError(f"tag {tag!r}: prefix {prefix!r} is not one of B, I, E, S{', M' if scheme == 'BMES' else ''}")
    return prefix, typ


def _ends(prev: str, prev_t: str, cur: str, cur_t: str) -> bool:
    """Did a chunk end at the previous word? (conlleval endOfChunk)"""
    return (prev in ("E", "S")
            or (prev in ("B", "I") and cur in ("B", "S", "O"))
            or (prev != "O" and prev_t != cur_t))


def _starts(prev: str, prev_t: str, cur: str, cur_t: str) -> bool:
    """Does a chunk start at this word? (conlleval startOfChunk)"""
    return (cur in ("B", "S")
            or (cur in ("I", "E") and prev in ("E", "S", "O"))
            or (cur != "O" and prev_t != cur_t))


def spans(tags: Sequence[str], scheme: str = "BIO") -> list[Span]:
    """The chunks of one tag sequence as (type, first, last) word indexes."""
    out: list[Span] = []
    prev, prev_t, start = "O", "", -1
    for i, tag in enumerate([*tags, "O"]):
        cur, cur_t = _split_tag(tag, scheme)
        if start >= 0 and _ends(prev, prev_t, cur, cur_t):
            out.append((prev_t, start, i - 1))
            start = -1
        if _starts(prev, prev_t, cur, cur_t):
            start = i
        prev, prev_t = cur, cur_t
    return out


def _chunk_sets(gold_tag_seqs: Sequence[Sequence[str]], pred_tag_seqs: Sequence[Sequence[str]],
                scheme: str, who: str) -> Iterator[tuple[set[Span], set[Span]]]:
    """Each sequence's (gold, predicted) chunks; sequences must pair up word for word."""
    if len(gold_tag_seqs) != len(pred_tag_seqs):
        raise ValueError(f"{who}: {len(gold_tag_seqs)} gold sequences but {len(pred_tag_seqs)} predicted")
    for i, (g, p) in enumerate(zip(gold_tag_seqs, pred_tag_seqs)):
        if len(g) != len(p):
            raise ValueError(f"{who}: sequence {i} has {len(g)} gold tags but {len(p)} predicted")
        yield set(spans(g, scheme)), set(spans(p, scheme))


def span_f1(gold_tag_seqs: Sequence[Sequence[str]], pred_tag_seqs: Sequence[Sequence[str]],
            scheme: str = "BIO") -> dict:
    """Entity-level micro precision/recall/F1 over all sequences, plus ``per_type`` and counts.

    ``scheme``: ``BIO``, ``BIOES`` or ``BMES`` (M- read as I-). Sequences must pair up word for word."""
    tp, n_gold, n_pred = Counter(), Counter(), Counter()
    for gs, ps in _chunk_sets(gold_tag_seqs, pred_tag_seqs, scheme, "span_f1"):
        n_gold.update(s[0] for s in gs)
        n_pred.update(s[0] for s in ps)
        tp.update(s[0] for s in gs & ps)
    types = sorted(set(n_gold) | set(n_pred))
    out = _prf(sum(tp.values()), sum(n_pred.values()), sum(n_gold.values()))
    out.update(n_gold=sum(n_gold.values()), n_pred=sum(n_pred.values()), n_correct=sum(tp.values()))
    out["per_type"] = {t: {**_prf(tp[t], n_pred[t], n_gold[t]), "support": n_gold[t]} for t in types}
    return out


def span_counts(gold_tag_seqs: Sequence[Sequence[str]], pred_tag_seqs: Sequence[Sequence[str]],
                scheme: str = "BIO") -> list[tuple[int, int, int]]:
    """(correct, predicted, gold) chunk counts per sequence: their sums are ``span_f1``'s n_correct, n_pred
    and n_gold, so F1 over any multiset of sequences is 2 * correct / (predicted + gold) of the summed counts
    (how pipeline.evaluate.resample resamples a test set)."""
    return [(len(gs & ps), len(ps), len(gs))
            for gs, ps in _chunk_sets(gold_tag_seqs, pred_tag_seqs, scheme, "span_counts")]


__all__ = ["accuracy", "macro_f1", "per_label_prf", "spans", "span_f1", "span_counts"]
