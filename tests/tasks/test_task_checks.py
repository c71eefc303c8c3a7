"""A task that cannot train what it claims is an error, at planning where the config and the files' first bytes
tell (before ingest, clean and dedup have run), else when the task is read; a train-only task's cut does not
depend on how its path is spelled."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.configtypes import ConfigError, build
from pipeline.tasks import TasksConfig, load_task
from pipeline.tasks.config import fingerprint
from pipeline.tasks.readers import TaskError

from tasks.test_readers import task, write

ROWS = "text,label\n" + "".join(f"sentence number {i},{['pos', 'neg'][i % 3 == 0]}\n" for i in range(60))


def plan_check(root: Path, **kw) -> None:
    fingerprint(build(TasksConfig, {"tasks": [{"name": "t", "source": "files", **kw}]}), root)


def test_one_label_is_refused_in_the_config_and_in_the_data(tmp_path):
    with pytest.raises(ConfigError, match=r"tasks.tasks\[t\].labels: got \['pos'\], allowed: at least 2"):
        task(name="t", train="a.csv", labels=["pos"])
    one = write(tmp_path / "one.csv", "text,label\n" + "".join(f"s {i},pos\n" for i in range(10)) + "s x,zzz\n")
    with pytest.raises(TaskError, match=r"in one.csv hold one label \('pos'; rows dropped: 1 unknown_label\)"):
        load_task(task(name="t", train=one, validation=one, test=one, labels=["pos", "neg"]), tmp_path)


def test_a_split_cut_of_zero_without_its_file_is_refused():
    with pytest.raises(ConfigError, match=r"tasks.tasks\[t\].test_fraction: got 0 without a test file"):
        task(name="t", train="a.csv", test_fraction=0.0)
    with pytest.raises(ConfigError, match=r"tasks.tasks\[t\].val_fraction: got 0 without a validation file"):
        task(name="t", train="a.csv", test="b.csv", val_fraction=0.0)
    task(name="t", train="a.csv", test="b.csv", test_fraction=0.0)  # the test file is the split


def test_task_files_are_checked_at_planning(tmp_path):
    good = write(tmp_path / "a.csv", ROWS)
    plan_check(tmp_path, train=good)
    write(tmp_path / "empty.csv", "")
    with pytest.raises(ConfigError, match=r"tasks.tasks\[t\].validation: 'empty.csv' is empty"):
        plan_check(tmp_path, train=good, validation="empty.csv")
    with pytest.raises(ConfigError, match=r"tasks.tasks\[t\].text_field: no column 'sentence' in 'a.csv' "
                                          r"\(its header: text, label\)"):
        plan_check(tmp_path, train=good, text_field="sentence")
    with pytest.raises(ConfigError, match=r"tasks.tasks\[t\].label_field: no column 'label' in 'a.csv' "
                                          r"\(header: false, so a column index\)"):
        plan_check(tmp_path, train=good, header=False, text_field="0")
    with pytest.raises(ConfigError, match=r"tasks.tasks\[t\].format: 'a.csv' reads as csv, allowed for kind "
                                          r"'tagging': conll, jsonl"):
        plan_check(tmp_path, train=good, kind="tagging")
    write(tmp_path / "b.csv", "\n" + '"te\nxt",label\n' + "".join(f"r{i},{i % 2}\n" for i in range(9)))
    plan_check(tmp_path, train="b.csv", text_field="te\nxt")  # a blank first line, a quoted newline: as read
    write(tmp_path / "n.conll", "EU B-ORG\n")
    with pytest.raises(ConfigError, match=r"'n.conll' reads as conll, allowed for kind 'classification'"):
        plan_check(tmp_path, train="n.conll")
    write(tmp_path / "n.data", "EU B-ORG\n")
    with pytest.raises(ConfigError, match=r"format: got 'auto', and 'n.data' has no suffix that tells its format"):
        plan_check(tmp_path, train="n.data")


def test_columns_keys_and_formats_the_first_lines_contradict_are_refused_at_planning(tmp_path):
    tsv = write(tmp_path / "g.tsv", "".join(f"sentence {i}\t{i % 2}\n" for i in range(9)))
    plan_check(tmp_path, train=tsv, header=False, text_field="0", label_field="-1")
    with pytest.raises(ConfigError, match=r"tasks.tasks\[t\].text_field: got column 5, but the first record of "
                                          r"'g.tsv' has 2 field\(s\)"):
        plan_check(tmp_path, train=tsv, header=False, text_field="5", label_field="1")
    with pytest.raises(ConfigError, match=r"label_field: got column -3, but the first record of 'g.tsv' has 2"):
        plan_check(tmp_path, train=tsv, header=False, text_field="0", label_field="-3")
    with pytest.raises(ConfigError, match=r"tasks.tasks\[t\].format: 'g.tsv' reads as jsonl \(format 'jsonl'\), "
                                          r"but none of its first 9 line\(s\) is a JSON object"):
        plan_check(tmp_path, train=tsv, format="jsonl")
    js = write(tmp_path / "g.jsonl", "not json\n" + "".join(f'{{"text": "s {i}", "stars": {i % 2}}}\n'
                                                            for i in range(5)))
    plan_check(tmp_path, train=js, label_field="stars")  # a bad first line is a drop, not a wrong config
    with pytest.raises(ConfigError, match=r"tasks.tasks\[t\].label_field: no key 'label' in the first 5 "
                                          r"record\(s\) of 'g.jsonl' \(their keys: stars, text\)"):
        plan_check(tmp_path, train=js)
    conll = write(tmp_path / "g.conll", "-DOCSTART- -X- O O\n\nEU NNP B-NP B-ORG\nsays VBZ B-VP O\n")
    plan_check(tmp_path, train=conll, kind="tagging", tag_column=3)
    with pytest.raises(ConfigError, match=r"tasks.tasks\[t\].tag_column: got 7, but the lines of 'g.conll' have 4 "
                                          r"column\(s\)"):
        plan_check(tmp_path, train=conll, kind="tagging", tag_column=7)
    tags = write(tmp_path / "t.jsonl", '{"words": ["a"], "tags": ["O"]}\n')
    with pytest.raises(ConfigError, match=r"text_field: no key 'tokens' in the first 1 record\(s\) of 't.jsonl' "
                                          r"\(their keys: tags, words\)"):
        plan_check(tmp_path, train=tags, kind="tagging", text_field="tokens", label_field="tags")


def test_the_cut_of_a_train_only_task_ignores_how_its_path_is_spelled(tmp_path):
    (tmp_path / "d").mkdir()
    write(tmp_path / "d" / "a.csv", ROWS)
    cuts = [{s: [ex["origin"] for ex in data.splits[s]] for s in ("validation", "test")}
            for data in (load_task(task(name="t", train=p), tmp_path) for p in ("d/a.csv", "./d/a.csv", "d//a.csv"))]
    assert cuts[0] == cuts[1] == cuts[2] and cuts[0]["test"][0].startswith("d/a.csv:")


def test_no_usable_rows_counts_that_files_drops(tmp_path):
    good = write(tmp_path / "a.csv", ROWS)
    bad_train = write(tmp_path / "b.csv", ROWS + ",pos\n" * 5)
    write(tmp_path / "h.csv", "text,label\n,pos\n")
    with pytest.raises(TaskError, match=r"no usable validation rows in h.csv \(1 dropped: \{'empty_text': 1\}; "
                       r"the first: h.csv:2: text is empty\)$"):
        load_task(task(name="t", train=bad_train, validation="h.csv", test=good), tmp_path)


def test_a_bad_first_conll_line_drops_its_own_sentence_only(tmp_path):
    rows = "John NN B-PER\n. NN O O\n\n" + "Mary NN O B-PER\nruns NN O O\n\n" * 30
    f = write(tmp_path / "first.conll", rows)
    data = load_task(task(name="n", kind="tagging", train=f, validation=f, test=f), tmp_path)
    assert len(data.splits["train"]) == 30 and data.drop_counts() == {"misaligned_tags": 3}
    assert data.drops[0].origin == "first.conll:1" and "most of the file's lines have 4" in data.drops[0].detail


def test_a_task_that_cannot_train_stops_the_plan_whatever_decontaminate_has_cached(tmp_path):
    """With its validation and test files named, a task's train file is not in decontaminate's key: an all-'O'
    train file found decontaminate cached, and the error came in finetune, after a new pretraining."""
    import json

    from pipeline import config
    from pipeline.plan import make_plan
    write(tmp_path / "tr.conll", "EU B-ORG\nsays O\n\nPeter B-PER\nsmiles O\n")
    write(tmp_path / "ev.conll", "Paris B-LOC\nsleeps O\n\nPeter B-PER\nruns O\n")
    write(tmp_path / "o.conll", "EU O\nsays O\n\nPeter O\nsmiles O\n")
    task = {"name": "ner", "kind": "tagging", "source": "files", "scheme": "BIO", "validation": "ev.conll",
            "test": "ev.conll"}
    cfg = lambda train: config.load("tiny", overrides=[f"tasks.tasks=[{json.dumps({**task, 'train': train})}]"])
    work = tmp_path / "data" / "work"
    make_plan(cfg("tr.conll"), work, tmp_path)
    with pytest.raises(ConfigError, match=r"^tasks.tasks\[ner\]: task ner: the train rows in o.conll hold no entity"):
        make_plan(cfg("o.conll"), work, tmp_path)
    assert make_plan(cfg("o.conll"), work, tmp_path, until="pretrain")  # no fine-tuning: nothing to refuse
