"""From a ``TaskConfig`` to checked, normalized examples per split, with every dropped row counted.

Normalized examples (what ``tasks/<task>/<split>.jsonl`` holds, one JSON object a line):
- classification: ``{"text", "label", "origin"}``; pair_classification adds ``"text_pair"``;
- tagging: ``{"tokens": [...], "tags": [...], "origin"}``;
``origin`` is ``file:line`` (or ``module/<m>:<where>`` for a stdlib task, which also carries ``unit``).

Drop reasons: ``missing_label``, ``unknown_label`` (not in the configured label list, or without one, in no train
row), ``empty_text``,
``misaligned_tags`` (token and tag counts differ, or a line lacks a column), ``bad_tag_scheme`` (a tag
the scheme does not allow), plus the readers' ``missing_field``, ``ragged_row`` (a row with more or fewer
fields than the header), ``malformed_row`` (a stray quote), ``bad_field_type`` (JSON text that is not a
string), ``bad_encoding`` (bytes that are not UTF-8) and ``bad_json``, and the stdlib tasks'
``duplicate_text`` / ``unbalanced_marks``.
"""
from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.configtypes import config_path
from pipeline.tasks import stdlib_tasks
from pipeline.tasks.config import SPLITS, TaskConfig
from pipeline.tasks.readers import Drop, Record, TaskError, read_file

PREFIXES = {"BIO": ("B", "I"), "BIOES": ("B", "I", "E", "S"), "BMES": ("B", "M", "E", "S")}


@dataclass
class TaskData:
    name: str
    kind: str
    labels: list[str]
    scheme: str | None  # tagging only
    splits: dict[str, list[dict[str, Any]]]
    drops: list[Drop] = field(default_factory=list)

    def drop_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(d.reason for d in self.drops).items()))

    def drops_report(self, samples_per_reason: int = 20) -> dict[str, Any]:
        samples: dict[str, list[dict[str, str]]] = {}
        for d in self.drops:
            bucket = samples.setdefault(d.reason, [])
            if len(bucket) < samples_per_reason:
                bucket.append({"where": d.origin, "detail": d.detail})
        return {"task": self.name, "counts": self.drop_counts(), "total": len(self.drops), "samples": samples}


def detect_scheme(tag_seqs: list[list[str]]) -> str:
    prefixes = {t.split("-", 1)[0].upper() for tags in tag_seqs for t in tags if "-" in t}
    if "M" in prefixes:
        return "BMES"
    return "BIOES" if prefixes & {"E", "S"} else "BIO"


def tag_labels(types: set[str], scheme: str) -> list[str]:
    return ["O"] + [f"{p}-{t}" for t in sorted(types) for p in PREFIXES[scheme]]


INTEGER = re.compile(r"-?[0-9]+")


def _label_order(labels: set[str]) -> list[str]:
    """Labels seen in the data, in a fixed order: as numbers when all are integers ("01" just before "1"),
    else as strings."""
    if labels and all(INTEGER.fullmatch(lab) for lab in labels):
        return sorted(labels, key=lambda lab: (int(lab), lab))
    return sorted(labels)


def _check_tags(rec: Record, scheme: str, allowed: set[str] | None, listed: str) -> Drop | None:
    if not rec.tokens:
        return Drop("empty_text", rec.origin, "no tokens")
    empty = [k for k, t in enumerate(rec.tokens) if not t.strip()]
    if empty:
        return Drop("empty_text", rec.origin, f"token {empty[0]} is empty")
    if len(rec.tokens) != len(rec.tags):
        return Drop("misaligned_tags", rec.origin, f"{len(rec.tokens)} tokens but {len(rec.tags)} tags")
    for tag in rec.tags:
        if tag != "O" and (tag.count("-") < 1 or tag.split("-", 1)[0] not in PREFIXES[scheme]
                           or not tag.split("-", 1)[1]):
            return Drop("bad_tag_scheme", rec.origin, f"tag {tag!r} is not O or {'/'.join(PREFIXES[scheme])}-TYPE")
    for tag in rec.tags:
        if allowed is not None and tag not in allowed:
            return Drop("unknown_label", rec.origin, f"tag {tag!r} {listed}")
    return None


def _check_text(rec: Record, kind: str, allowed: set[str] | None, label_field: str, listed: str) -> Drop | None:
    if rec.label is None or not rec.label.strip():
        return Drop("missing_label", rec.origin, f"label_field {label_field!r}: absent or empty")
    if allowed is not None and rec.label.strip() not in allowed:
        return Drop("unknown_label", rec.origin, f"label {rec.label.strip()!r} {listed}")
    if rec.text is None or not rec.text.strip():
        return Drop("empty_text", rec.origin, "text is empty")
    if kind == "pair_classification" and (rec.text_pair is None or not rec.text_pair.strip()):
        return Drop("empty_text", rec.origin, "text_pair is empty")
    return None


def _example(rec: Record, kind: str) -> dict[str, Any]:
    if kind == "tagging":
        ex: dict[str, Any] = {"tokens": rec.tokens, "tags": rec.tags}
    else:
        ex = {"text": rec.text, "label": rec.label.strip()}
        if kind == "pair_classification":
            ex["text_pair"] = rec.text_pair
    ex["origin"] = rec.origin
    if rec.unit is not None:
        ex["unit"] = rec.unit
    return ex


def _hash01(seed: int, key: str) -> float:
    return int.from_bytes(hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest(), "big") / 2.0**64


def _file_records(cfg: TaskConfig, root: Path) -> tuple[dict[str, list[Record | Drop]], dict[str, str]]:
    """Records per split from the task's files; splits without a file are cut from train."""
    out: dict[str, list[Record | Drop]] = {s: [] for s in SPLITS}
    where: dict[str, str] = {}
    for split in SPLITS:
        rel = cfg.file(split)
        if rel:
            path = config_path(root, rel)
            # origins name the file as normalized: "./a.csv" and "a.csv" give the same origins, so the same
            # split cut and samples (both hash the origin); a relative path keeps them when the project moves
            rel = os.path.normpath(rel)
            where[split] = rel
            out[split] = list(read_file(path, rel, cfg))
    cut = {"test": cfg.test_fraction, "validation": cfg.val_fraction}
    cut = {s: f for s, f in cut.items() if s not in where}
    if cut:
        kept = []
        # every copy of a text takes its first copy's side: a text repeated in the file is on one side of the cut
        # (the key of a first copy, as _numbered gave it when copies were placed one by one; a drop's origin is its own)
        keys = [f"{item.origin if isinstance(item, Drop) else _text_key(item.text, item.text_pair, item.tokens)}\x1d1"
                for item in out["train"]]
        for item, key in zip(out["train"], keys):
            x = _hash01(cfg.split_seed, key)
            if "test" in cut and x < cut["test"]:
                out["test"].append(item)
            elif "validation" in cut and x < cut.get("test", 0.0) + cut["validation"]:
                out["validation"].append(item)
            else:
                kept.append(item)
        out["train"] = kept
        for s in cut:
            where[s] = f"{where['train']} (a {cut[s]:.0%} cut, seed {cfg.split_seed})"
    return out, where


def _text_key(text: str | None, pair: str | None, tokens: list[str] | None) -> str:
    """What decides a file row's side of the cut and its place in a sample (with the count of its copies so far):
    its text, not its file and line, so a renamed file or an inserted row moves no other row. The copies of a
    text all take the first copy's side of the cut (a test row's text is never a train row's); a sample draws
    them one by one."""
    if text is None:  # a tagging row
        return "t:" + "\x1f".join(tokens or [])
    return "c:" + text.strip() + "\x1e" + (pair or "").strip()


def _numbered(keys: list[str]) -> list[str]:
    """Each key with the count of its copies so far (the second "a" is "a" 2)."""
    copies: Counter = Counter()
    out = []
    for key in keys:
        copies[key] += 1
        out.append(f"{key}\x1d{copies[key]}")
    return out


def subsample(examples: list[dict[str, Any]], k: int | None, seed: int, by_text: bool = False) -> list[dict[str, Any]]:
    """A deterministic sample of k examples (by a keyed hash of their origin, or ``by_text``: of ``_text_key``
    and the copy count: a file task's), in their original order."""
    if k is None or len(examples) <= k:
        return examples
    keys = (_numbered([_text_key(ex.get("text"), ex.get("text_pair"), ex.get("tokens")) for ex in examples])
            if by_text else [ex["origin"] for ex in examples])
    keep = set(sorted(range(len(examples)), key=lambda i: _hash01(seed, keys[i]))[:k])
    return [ex for i, ex in enumerate(examples) if i in keep]


def load_task(cfg: TaskConfig, root: Path = Path("."), cache_dir: Path | None = None) -> TaskData:
    """Read, check, split and cap one task; raise ``TaskError`` if a split ends up with no usable row.
    ``cache_dir``: where a stdlib task may keep the parsed standard library (see ``stdlib_tasks.use_cache``)."""
    if cfg.source == "files":
        raw, where = _file_records(cfg, root)
    else:
        if cache_dir is not None:
            stdlib_tasks.use_cache(cache_dir)
        raw = stdlib_tasks.records(cfg)
        where = {s: f"stdlib ({cfg.source}, {s} units)" for s in SPLITS}
    by_split: dict[str, list[Drop]] = {s: [x for x in raw[s] if isinstance(x, Drop)] for s in SPLITS}
    recs = {s: [x for x in raw[s] if isinstance(x, Record)] for s in SPLITS}
    allowed = set(cfg.labels) if cfg.labels is not None else None
    scheme = None
    if cfg.kind == "tagging":
        seen = detect_scheme([r.tags for r in recs["train"]])
        scheme = cfg.scheme if cfg.scheme != "auto" else seen
        if scheme != seen == "BIO" and any("-" in t for r in recs["train"] for t in r.tags):
            # every BIOES / BMES entity ends on an E- or S- tag: train tags without one are BIO
            raise TaskError(f"task {cfg.name}: scheme {scheme}, but the train tags in {where['train']} have no E- "
                            "or S- tag: they read as BIO; set scheme: BIO (or auto)")
    splits: dict[str, list[dict[str, Any]]] = {}
    shown = ", ".join(map(repr, (cfg.labels or [])[:8])) + (", ..." if len(cfg.labels or []) > 8 else "")
    listed, by_text = f"is not in the label list ({shown})", cfg.source == "files"
    for s in SPLITS:  # train first: without a label list, its labels are the task's
        good = []
        for rec in recs[s]:
            bad = (_check_tags(rec, scheme, allowed, listed) if cfg.kind == "tagging"
                   else _check_text(rec, cfg.kind, allowed, cfg.label_field, listed))
            if bad:
                by_split[s].append(bad)
            else:
                good.append(_example(rec, cfg.kind))
        if s == "train" and good:
            good = subsample(good, cfg.max_train, cfg.split_seed, by_text)  # the rows the task trains on
            _one_label(cfg, good, by_split["train"], where["train"])
            if allowed is None:  # a label only validation or test holds, or sampled-away rows, is no class
                allowed = (set(tag_labels({t.split("-", 1)[1] for ex in good for t in ex["tags"] if t != "O"},
                                          scheme)) if cfg.kind == "tagging" else {ex["label"] for ex in good})
                listed = "does not occur in the train rows (the task's labels when the config lists none)"
        splits[s] = good
    drops = [d for s in SPLITS for d in by_split[s]]
    for s in SPLITS:  # every split checked first: an error counts all the drops of its rows
        if not splits[s]:
            cut = [o for o in SPLITS if o != s and where[o].startswith(where[s] + " (a ")] if s == "train" else []
            others = sum(len(raw[o]) for o in cut)
            note = f"; {others} more row(s) of the file went to the {' and '.join(cut)} cut" if others else ""
            first = f"; the first: {by_split[s][0].origin}: {by_split[s][0].detail}" if by_split[s] else ""
            raise TaskError(f"task {cfg.name}: no usable {s} rows in {where[s]} ({len(by_split[s])} dropped: "
                            f"{dict(Counter(d.reason for d in by_split[s]))}{first}{note})")
    for s in ("validation", "test"):
        splits[s] = subsample(splits[s], cfg.max_eval, cfg.split_seed, by_text)
    if cfg.labels is not None:
        labels = list(cfg.labels)
    elif cfg.kind == "tagging":
        types = {t.split("-", 1)[1] for s in SPLITS for ex in splits[s] for t in ex["tags"] if t != "O"}
        labels = tag_labels(types, scheme)
    else:
        labels = _label_order({ex["label"] for s in SPLITS for ex in splits[s]})
    return TaskData(cfg.name, cfg.kind, labels, scheme, splits, drops)


def _one_label(cfg: TaskConfig, train: list[dict[str, Any]], dropped: list[Drop], where: str) -> None:
    """A classifier of one class would train, and score 1.0; a tagger whose train rows hold no entity learns
    "O" alone (every sentence with an entity dropped, e.g. BIOES tags read as BIO): an error naming the train
    rows' drops."""
    counts = ", ".join(f"{n} {r}" for r, n in sorted(Counter(d.reason for d in dropped).items())) or "none"
    sampled = '' if cfg.max_train is None else f'; max_train {cfg.max_train}'
    if cfg.kind == "tagging":
        if train and not any(t != "O" for ex in train for t in ex["tags"]):
            hint = (f"; do the tags follow scheme {cfg.scheme}?" if any(d.reason == "bad_tag_scheme" for d in dropped)
                    else "")
            raise TaskError(f"task {cfg.name}: the train rows in {where} hold no entity, every tag is 'O' (rows "
                            f"dropped: {counts}{sampled}); a tagger needs tagged spans to learn from{hint}")
        return
    seen = sorted({ex["label"] for ex in train})
    if len(seen) == 1:
        raise TaskError(f"task {cfg.name}: the train rows in {where} hold one label ({seen[0]!r}; rows dropped: "
                        f"{counts}{sampled}); a classifier needs at least 2")


__all__ = ["TaskData", "load_task", "detect_scheme", "tag_labels", "subsample", "PREFIXES"]
