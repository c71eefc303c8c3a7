"""The default tasks: labels from the data itself, marks removed, whole modules held out."""
from __future__ import annotations

from collections import defaultdict

from pipeline.ingest import stdlib
from pipeline.tasks import TaskConfig, TasksConfig, held_out_units, doc_unit, load_task
from pipeline.tasks import stdlib_tasks
from pipeline.tasks.stdlib_tasks import DOC_MARK, TOPIC_MARK, area_label, marked_words, unit_splits, windows


def test_backticks_give_b_code_on_exactly_those_words_with_marks_removed():
    doc = "Call ``os.path.join`` on `parts`, see :func:`shutil.copy file` and the `old' style."
    words, tags = marked_words(doc, DOC_MARK, "`")
    assert words == ["Call", "os.path.join", "on", "parts,", "see", "shutil.copy", "file", "and", "the", "old",
                     "style."]
    assert tags == ["O", "B-CODE", "O", "B-CODE", "O", "B-CODE", "I-CODE", "O", "O", "B-CODE", "O"]
    assert not any("`" in w or ":func:" in w for w in words)


def test_topic_quotes_and_unbalanced_marks():
    words, tags = marked_words('The "assert" statement and "x is y" form.', TOPIC_MARK, '"')
    assert list(zip(words, tags)) == [("The", "O"), ("assert", "B-CODE"), ("statement", "O"), ("and", "O"),
                                      ("x", "B-CODE"), ("is", "I-CODE"), ("y", "I-CODE"), ("form.", "O")]
    assert marked_words("an ``open mark", DOC_MARK, "`") is None
    assert marked_words('one "quote', TOPIC_MARK, '"') is None


def test_windows_never_cut_inside_a_mark():
    words = [f"w{i}" for i in range(10)]
    tags = ["O", "O", "B-CODE", "I-CODE", "I-CODE", "O", "O", "O", "B-CODE", "O"]
    pieces = list(windows(words, tags, size=4))
    assert [len(w) for w, _ in pieces] == [2, 4, 4]
    assert all(t[0] != "I-CODE" for _, t in pieces)
    assert sum((w for w, _ in pieces), []) == words


def test_names_examples_match_their_source_docstrings():
    data = load_task(TaskConfig(name="stdlib_names", kind="tagging", source="stdlib_names", scheme="BIO"))
    assert data.labels == ["O", "B-CODE", "I-CODE"]
    for ex in data.splits["train"][:200]:
        assert len(ex["tokens"]) == len(ex["tags"]) and "B-CODE" in ex["tags"]
        if ex["unit"].startswith("module/"):
            assert not any("``" in w for w in ex["tokens"])


def test_area_labels_come_from_the_module_path_and_splits_hold_out_whole_modules():
    cfg = TaskConfig(name="stdlib_area")
    data = load_task(cfg)
    assert set(data.labels) == set(cfg.areas)
    unit_split: dict[str, set[str]] = defaultdict(set)
    for split, examples in data.splits.items():
        for ex in examples:
            module = ex["unit"].removeprefix("module/")
            assert ex["label"] == area_label(module, cfg.areas)
            assert ex["origin"].startswith(ex["unit"] + ":")
            unit_split[ex["unit"]].add(split)
    assert all(len(s) == 1 for s in unit_split.values())  # no module in two splits
    test_labels = {ex["label"] for ex in data.splits["test"]}
    assert test_labels == set(cfg.areas)  # every area has held-out modules
    assert 0.05 < len(data.splits["test"]) / sum(len(v) for v in data.splits.values()) < 0.25


def test_unit_split_is_deterministic_and_stratified():
    a, b = unit_splits(0, 0.1, 0.1), unit_splits(0, 0.1, 0.1)
    assert a == b
    assert unit_splits(1, 0.1, 0.1) != a
    some = frozenset({"email", "xml"})  # a group's split does not depend on the other groups
    assert unit_splits(0, 0.1, 0.1, some) == {u: s for u, s in a.items() if u.split("/")[1].split(".")[0] in some
                                              and u.startswith("module/")}
    per_area: dict[str, set[str]] = defaultdict(set)
    for unit, split in a.items():
        if unit.startswith("module/"):
            per_area[stdlib.area(unit.removeprefix("module/"))].add(split)
    for area in ("asyncio", "email", "tkinter", "xml", "unittest"):
        assert per_area[area] == {"train", "validation", "test"}


def test_held_out_units_are_the_test_examples_units():
    tasks = TasksConfig()
    units = held_out_units(tasks)
    area = load_task(tasks.get("stdlib_area"))
    assert {ex["unit"] for ex in area.splits["test"]} <= units
    assert not units & {ex["unit"] for ex in area.splits["train"]}
    module = next(u for u in units if u.startswith("module/")).removeprefix("module/")
    assert doc_unit({"kind": "module", "module": module}) in units
    assert doc_unit('{"kind": "module", "module": "%s"}' % module) in units
    train_module = area.splits["train"][0]["unit"].removeprefix("module/")
    assert doc_unit({"kind": "module", "module": train_module}) not in units
    assert doc_unit({"file": "mine.jsonl", "line": 3, "kind": "module", "module": module}) not in units


def test_docstring_cache_round_trips(tmp_path, monkeypatch):
    path = stdlib_tasks.use_cache(tmp_path)
    before = stdlib_tasks.module_docstrings(frozenset({"json", "email"}))
    monkeypatch.setattr(stdlib_tasks, "_PARSED", {})
    monkeypatch.setattr(stdlib_tasks, "ast", None)  # loading from the cache must not parse anything
    assert stdlib_tasks.use_cache(tmp_path) == path
    assert stdlib_tasks.module_docstrings(frozenset({"json", "email"})) == before
    assert len(before) > 10 and all(docs for _, docs in before)


def test_no_names_example_is_in_two_splits_nor_twice_in_one(tmp_path):
    """pydoc topics and some modules repeat whole paragraphs: 20 of the default's 200 test windows were train
    windows too (a reviewer's count). A repeated window is now dropped as duplicate_text, as a repeated docstring
    is in the area task."""
    names = next(t for t in TasksConfig().tasks if t.source == "stdlib_names")
    records = stdlib_tasks.names_records(names)  # every window, before any sampling
    kept = {s: [tuple(r.tokens) for r in rs if not hasattr(r, "reason")] for s, rs in records.items()}
    assert all(len(set(ws)) == len(ws) for ws in kept.values())
    assert not set(kept["train"]) & set(kept["test"]) and not set(kept["train"]) & set(kept["validation"])
    assert not set(kept["validation"]) & set(kept["test"])
    dups = [r for rs in records.values() for r in rs if getattr(r, "reason", None) == "duplicate_text"]
    assert len(dups) > 100 and all(d.detail.startswith("the same words as ") for d in dups)
    data = load_task(names, tmp_path)
    assert data.drop_counts()["duplicate_text"] > 0
