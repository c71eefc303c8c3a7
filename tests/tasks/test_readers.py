"""Task files: every format, every kind of bad row counted with file and line, splits and caps."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.configtypes import ConfigError, build
from pipeline.tasks import TaskConfig, TaskError, TasksConfig, load_task


def task(**kw) -> TaskConfig:
    return build(TaskConfig, {"source": "files", **kw})


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return path.name


def drops_by_reason(data) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for d in data.drops:
        out.setdefault(d.reason, []).append(d.origin)
    return out


def test_csv_by_name_with_bad_rows(tmp_path):
    tr = write(tmp_path / "tr.csv", 'text,label\n"good, quoted",pos\nfine,neg\n,pos\nno label,\nweird,maybe\nok,pos\n')
    va = write(tmp_path / "va.csv", "text,label\nv1,pos\n")
    te = write(tmp_path / "te.csv", "text,label\nt1,neg\n")
    data = load_task(task(name="t", train=tr, validation=va, test=te, labels=["neg", "pos"]), tmp_path)
    assert [ex["text"] for ex in data.splits["train"]] == ["good, quoted", "fine", "ok"]
    assert data.splits["train"][0]["origin"] == "tr.csv:2"
    assert drops_by_reason(data) == {"empty_text": ["tr.csv:4"], "missing_label": ["tr.csv:5"],
                                     "unknown_label": ["tr.csv:6"]}
    assert data.labels == ["neg", "pos"]
    assert data.drops_report()["counts"] == {"empty_text": 1, "missing_label": 1, "unknown_label": 1}


def test_tsv_by_index_without_header_and_labels_from_data(tmp_path):
    rows = "".join(f"{i % 3}\tsentence number {i}\n" for i in range(30))
    tr = write(tmp_path / "d.tsv", rows + "1\n")  # a short row: no text column
    data = load_task(task(name="t", train=tr, header=False, text_field="1", label_field="0",
                          val_fraction=0.2, test_fraction=0.2, split_seed=3), tmp_path)
    assert data.labels == ["0", "1", "2"]  # numeric labels sort as numbers
    sizes = {s: len(v) for s, v in data.splits.items()}
    assert sum(sizes.values()) == 30 and min(sizes.values()) > 0
    origins = [ex["origin"] for s in data.splits.values() for ex in s]
    assert len(set(origins)) == 30  # the cut splits are disjoint
    assert drops_by_reason(data) == {"missing_field": ["d.tsv:31"]}
    again = load_task(task(name="t", train=tr, header=False, text_field="1", label_field="0",
                           val_fraction=0.2, test_fraction=0.2, split_seed=3), tmp_path)
    assert again.splits == data.splits  # deterministic from the seed
    other = load_task(task(name="t", train=tr, header=False, text_field="1", label_field="0",
                           val_fraction=0.2, test_fraction=0.2, split_seed=4), tmp_path)
    assert other.splits["test"] != data.splits["test"]


def test_tsv_column_by_index_with_header(tmp_path):
    """SST-2's train calls the text 'sentence' and dev calls it 'content': index 1 reads both."""
    tr = write(tmp_path / "train.tsv", "label\tsentence\n0\tbad film\n1\tgood \"quoted\" film\n")
    dv = write(tmp_path / "dev.tsv", "label\tcontent\n1\tnice\n")
    data = load_task(task(name="s", train=tr, validation=dv, test=dv, text_field="1", label_field="0"), tmp_path)
    assert [ex["text"] for ex in data.splits["train"]] == ["bad film", 'good "quoted" film']
    assert data.splits["validation"][0] == {"text": "nice", "label": "1", "origin": "dev.tsv:2"}


def test_jsonl_pairs_with_bad_lines(tmp_path):
    lines = [{"premise": "a cat", "hypothesis": "an animal", "y": "entail"},
             {"premise": "a cat", "hypothesis": "", "y": "contra"},
             {"premise": "x", "hypothesis": "y"}]
    other = {"premise": "a dog", "hypothesis": "a cat", "y": "contra"}
    text = "\n".join(json.dumps(x) for x in lines) + "\n{not json\n[1, 2]\n" + json.dumps(other) + "\n"
    tr = write(tmp_path / "p.jsonl", text)
    data = load_task(task(name="p", kind="pair_classification", train=tr, validation=tr, test=tr,
                          text_field="premise", text_pair_field="hypothesis", label_field="y"), tmp_path)
    assert data.splits["train"] == [
        {"text": "a cat", "text_pair": "an animal", "label": "entail", "origin": "p.jsonl:1"},
        {"text": "a dog", "text_pair": "a cat", "label": "contra", "origin": "p.jsonl:6"}]
    by = drops_by_reason(data)
    assert by["empty_text"][:1] == ["p.jsonl:2"]
    assert by["missing_label"][:1] == ["p.jsonl:3"]
    assert by["bad_json"][:2] == ["p.jsonl:4", "p.jsonl:5"]
    assert data.drop_counts() == {"bad_json": 6, "empty_text": 3, "missing_label": 3}  # 3 splits read the file


CONLL = """-DOCSTART- -X- O

EU NNP B-ORG
rejects VBZ O
German JJ B-MISC

Peter NNP B-PER
Blackburn NNP I-PER
-DOCSTART- -X- O
broken
line NN O

Bad NN X-PER
tag NN O

Fine NN S-LOC
"""


def test_conll_sentences_and_bad_rows(tmp_path):
    tr = write(tmp_path / "train.conll", CONLL)
    data = load_task(task(name="ner", kind="tagging", train=tr, validation=tr, test=tr, scheme="BIO"), tmp_path)
    train = data.splits["train"]
    assert [ex["tokens"] for ex in train] == [["EU", "rejects", "German"], ["Peter", "Blackburn"]]
    assert [ex["origin"] for ex in train] == ["train.conll:3", "train.conll:7"]
    by = drops_by_reason(data)
    assert by["misaligned_tags"][0] == "train.conll:10"  # the line that lacks a tag column
    two = write(tmp_path / "two.conll", "EU B-ORG\nrejects O\n\nPeter B-PER\n")  # tag_column 2 of 2 columns
    with pytest.raises(TaskError, match=r"2 column\(s\): no tag_column 2"):  # (it named max(token, tag) column)
        load_task(task(name="ner", kind="tagging", train=two, validation=two, test=two, scheme="BIO", tag_column=2),
                  tmp_path)
    assert by["bad_tag_scheme"][:2] == ["train.conll:13", "train.conll:16"]  # X-PER; S- is not BIO
    assert data.labels == ["O", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def test_a_scheme_the_train_tags_contradict_is_an_error(tmp_path):
    tr = write(tmp_path / "bio.conll", "EU B-ORG\nsays O\n\nPeter B-PER\nBlackburn I-PER\n")
    for scheme in ("BIOES", "BMES"):  # BIO tags: no entity ends on an E- or S- tag
        with pytest.raises(TaskError, match=f"task ner: scheme {scheme}, but the train tags in bio.conll have no "
                           "E- or S- tag: they read as BIO; set scheme: BIO"):
            load_task(task(name="ner", kind="tagging", train=tr, validation=tr, test=tr, scheme=scheme), tmp_path)
    assert load_task(task(name="ner", kind="tagging", train=tr, validation=tr, test=tr), tmp_path).scheme == "BIO"
    only_o = write(tmp_path / "o.conll", "a O\nb O\n")  # no entity at all: nothing to learn
    with pytest.raises(TaskError, match=r"task o: the train rows in o.conll hold no entity, every tag is 'O' \(rows "
                       r"dropped: none\); a tagger needs tagged spans to learn from$"):
        load_task(task(name="o", kind="tagging", train=only_o, validation=only_o, test=only_o, scheme="BIOES"),
                  tmp_path)


def test_tags_of_another_scheme_leaving_no_entity_are_an_error_not_an_o_tagger(tmp_path):
    """BIOES tags read as BIO dropped every sentence with an entity: the run trained a tagger of 'O' alone."""
    tr = write(tmp_path / "s.conll", "EU S-ORG\nsays O\n\nPeter B-PER\nBlackburn E-PER\n\nit O\nrains O\n")
    with pytest.raises(TaskError, match=r"in s.conll hold no entity, every tag is 'O' \(rows dropped: 2 "
                       r"bad_tag_scheme\); a tagger needs tagged spans to learn from; do the tags follow scheme BIO\?"):
        load_task(task(name="n", kind="tagging", train=tr, validation=tr, test=tr, scheme="BIO"), tmp_path)


def test_a_label_no_train_row_holds_is_dropped_not_made_a_class(tmp_path):
    """Without a label list, a label (or an entity type) that only validation or test holds became a class no
    run could learn, deflating macro-F1; now its rows are dropped as unknown_label, with their file and line."""
    tr = write(tmp_path / "tr.tsv", "text\tlabel\ngood film\t1\nbad film\t0\nfine\t1\n")
    te = write(tmp_path / "te.tsv", "text\tlabel\nok film\t1\nodd one\t2\n")
    data = load_task(task(name="c", train=tr, validation=tr, test=te), tmp_path)
    assert data.labels == ["0", "1"] and [ex["text"] for ex in data.splits["test"]] == ["ok film"]
    drop = next(d for d in data.drops if d.reason == "unknown_label")
    assert (drop.origin, drop.detail) == ("te.tsv:3", "label '2' does not occur in the train rows (the task's "
                                                      "labels when the config lists none)")
    listed = load_task(task(name="c", train=tr, validation=tr, test=te, labels=["0", "1", "2"]), tmp_path)
    assert listed.labels == ["0", "1", "2"] and len(listed.splits["test"]) == 2  # a listed label is a class
    ner_tr = write(tmp_path / "ner_tr.conll", "EU B-ORG\nsays O\n\nPeter B-PER\n")
    ner_dev = write(tmp_path / "ner_dev.conll", "Paris B-LOC\n\nPeter B-PER\nsmiles O\n")
    ner = load_task(task(name="n", kind="tagging", train=ner_tr, validation=ner_dev, test=ner_dev), tmp_path)
    assert ner.labels == ["O", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    assert [ex["tokens"] for ex in ner.splits["test"]] == [["Peter", "smiles"]]
    assert drops_by_reason(ner)["unknown_label"] == ["ner_dev.conll:1", "ner_dev.conll:1"]  # validation and test


def test_conll_scheme_detection_and_jsonl_tagging(tmp_path):
    tr = write(tmp_path / "t.txt", "a S-X\nb B-Y\nc E-Y\n\nd O\n")
    data = load_task(task(name="n", kind="tagging", train=tr, validation=tr, test=tr, token_column=0,
                          tag_column=1), tmp_path)
    assert data.scheme == "BIOES"
    assert data.labels == ["O", "B-X", "I-X", "E-X", "S-X", "B-Y", "I-Y", "E-Y", "S-Y"]
    js = write(tmp_path / "t.jsonl", json.dumps({"words": ["a", "b"], "ner": ["B-X"]}) + "\n"
               + json.dumps({"words": ["a", "b"], "ner": ["B-X", "I-X"]}) + "\n")
    data = load_task(task(name="j", kind="tagging", train=js, validation=js, test=js, text_field="words",
                          label_field="ner"), tmp_path)
    assert data.splits["train"] == [{"tokens": ["a", "b"], "tags": ["B-X", "I-X"], "origin": "t.jsonl:2"}]
    assert drops_by_reason(data)["misaligned_tags"][0] == "t.jsonl:1"


def test_no_usable_rows_is_an_error_naming_the_file(tmp_path):
    tr = write(tmp_path / "empty.csv", "text,label\n,a\n,b\n")
    with pytest.raises(TaskError, match=r"no usable train rows in empty\.csv \(2 dropped"):
        load_task(task(name="t", train=tr, validation=tr, test=tr), tmp_path)
    with pytest.raises(TaskError, match="does not exist"):
        load_task(task(name="t", train="missing.csv"), tmp_path)


def test_caps_are_deterministic_samples(tmp_path):
    tr = write(tmp_path / "d.csv", "text,label\n" + "".join(f"t{i},{'ab'[i % 2]}\n" for i in range(100)))
    cfg = task(name="t", train=tr, max_train=10, max_eval=5)
    a, b = load_task(cfg, tmp_path), load_task(cfg, tmp_path)
    assert len(a.splits["train"]) == 10 and len(a.splits["test"]) == 5
    assert a.splits == b.splits
    lines = [int(ex["origin"].split(":")[1]) for ex in a.splits["train"]]
    assert lines == sorted(lines) and lines[-1] > 20  # a spread-out sample in file order, not a prefix


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="needs a train file"):
        task(name="t")
    with pytest.raises(ConfigError, match="kind"):
        build(TaskConfig, {"name": "t", "source": "stdlib_names", "kind": "classification"})
    with pytest.raises(ConfigError, match="duplicate task name 'a'"):
        build(TasksConfig, {"tasks": [{"name": "a"}, {"name": "a"}]})


def test_json_rows_name_a_missing_key_apart_from_a_wrong_type(tmp_path):
    """A pair row without its second text was empty_text, and tokens that are not a list were missing_field."""
    rows = [{"premise": "a", "hypothesis": "b", "label": "same"}, {"premise": "c", "label": "diff"},
            {"premise": "d", "hypothesis": None, "label": "diff"}, {"premise": "e", "hypothesis": "f", "label": "diff"}]
    pairs = write(tmp_path / "p.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    data = load_task(task(name="p", kind="pair_classification", train=pairs, validation=pairs, test=pairs,
                          text_field="premise", text_pair_field="hypothesis"), tmp_path)
    detail = {d.origin: (d.reason, d.detail) for d in data.drops}
    assert detail["p.jsonl:2"] == ("missing_field", "no 'hypothesis'")
    assert detail["p.jsonl:3"] == ("empty_text", "text_pair is empty")  # there, but null: as an empty CSV cell
    tags = [{"tokens": ["a"], "tags": ["O"]}, {"tokens": "a b", "tags": ["O", "O"]}, {"tokens": ["a"]},
            {"tokens": ["b", "c"], "tags": ["B-X", "I-X"]}]
    ner = write(tmp_path / "t.jsonl", "".join(json.dumps(r) + "\n" for r in tags))
    data = load_task(task(name="t", kind="tagging", train=ner, validation=ner, test=ner, text_field="tokens",
                          label_field="tags"), tmp_path)
    detail = {d.origin: (d.reason, d.detail) for d in data.drops}
    assert detail["t.jsonl:2"] == ("bad_field_type", "'tokens' and 'tags' must be lists")
    assert detail["t.jsonl:3"] == ("missing_field", "no 'tags'")


def test_no_usable_rows_counts_every_drop_of_the_split(tmp_path):
    """The error once counted only the drops seen before it was raised: the rows hashed into the cut splits and
    the rows a label list filtered out of a stdlib task were missing from it."""
    import re
    rows = "".join(f"text {i}\t\n" if i % 2 else "\t1\n" for i in range(6))  # no label / no text
    z = write(tmp_path / "z.tsv", "text\tlabel\n" + rows)
    with pytest.raises(TaskError) as err:
        load_task(task(name="z", train=z, val_fraction=0.3, test_fraction=0.3), tmp_path)
    m = re.fullmatch(r"task z: no usable train rows in z\.tsv \((\d+) dropped: \{.*\}; the first: z.tsv:\d+: [^;]+; "
                     r"(\d+) more row\(s\) of the "
                     r"file went to the validation and test cut\)", str(err.value))
    assert m and int(m[1]) + int(m[2]) == 6 and int(m[2]) > 0
    stdlib = build(TasksConfig, {}).tasks[0]
    with pytest.raises(TaskError, match=r"no usable train rows in stdlib \(stdlib_area, train units\) \([1-9]\d* "
                                        r"dropped: \{.*'unknown_label': [1-9]\d*\}; the first: .*\)$"):
        load_task(build(TaskConfig, {**stdlib.__dict__, "labels": ["a", "b"], "max_train": 50}), tmp_path)


@pytest.mark.parametrize("over, key", [
    ({"text_field": "foo"}, "text_field"), ({"header": False}, "header"), ({"areas": {"a": ["x"], "b": ["y"]}}, None)])
def test_an_option_the_task_does_not_read_is_refused(over, key):
    """``tasks.tasks[stdlib_area].text_field=foo`` was accepted and reran decontaminate to evaluate for nothing."""
    base = {"name": "n", "kind": "tagging", "source": "stdlib_names"}
    if key is None:  # areas: read by stdlib_area only
        with pytest.raises(ConfigError, match=r"^tasks\.tasks\[n\]\.areas: got .* but a stdlib_names tagging task"):
            build(TaskConfig, {**base, **over})
        assert build(TaskConfig, {**base, "name": "a", "kind": "classification", "source": "stdlib_area", **over})
        return
    with pytest.raises(ConfigError, match=rf"^tasks\.tasks\[n\]\.{key}: got .*, but a stdlib_names tagging task does "
                                          r"not read it; allowed: leave it out$"):
        build(TaskConfig, {**base, **over})
    with pytest.raises(ConfigError, match=r"text_pair_field: got 'b', but a files classification task"):
        build(TaskConfig, {"name": "n", "source": "files", "train": "a.csv", "text_pair_field": "b"})


def test_the_cut_follows_each_rows_text_not_its_file_and_line(tmp_path):
    """The validation / test cut hashed ``file:line``: a renamed file, or a row inserted near the top, reshuffled
    them (2 of 30 test rows kept, per a tester). Now each row keeps its side."""
    rows = [f"review number {i}\t{i % 2}\n" for i in range(200)]
    a = write(tmp_path / "reviews.tsv", "text\tlabel\n" + "".join(rows))
    b = write(tmp_path / "reviews_big.tsv", "text\tlabel\nan inserted row\t1\n" + "".join(rows))
    sides = lambda f: {s: {ex["text"] for ex in d} for s, d in load_task(task(name="r", train=f), tmp_path)
                       .splits.items()}
    before, after = sides(a), sides(b)
    assert {s: after[s] - {"an inserted row"} for s in after} == before
    assert 10 <= len(before["test"]) <= 30  # a 10% cut
    sides = lambda f: {s: {ex["text"] for ex in d} for s, d in load_task(  # the max_train / max_eval samples too
        task(name="r", train=f, max_train=50, max_eval=5), tmp_path).splits.items()}
    before, after = sides(a), sides(b)
    assert all(len(after[s] ^ before[s]) <= 2 for s in after)  # at most the inserted row in, one row out
    assert sum(len(after[s] ^ before[s]) for s in after) <= 2


def test_a_text_repeated_in_the_train_file_is_on_one_side_of_the_cut(tmp_path):
    """Each copy hashed with its copy number took a side of its own: 30 copies of one text were split 24 / 2 / 4
    between train, validation and test (a reviewer's count), a test text that train held too."""
    rows = [f"review number {i}\t{i % 2}\n" for i in range(200)] + ["the same review\t1\n"] * 30
    f = write(tmp_path / "dups.tsv", "text\tlabel\n" + "".join(rows))
    data = load_task(task(name="d", train=f), tmp_path)
    sides = [s for s, exs in data.splits.items() if any(ex["text"] == "the same review" for ex in exs)]
    assert len(sides) == 1
    alone = write(tmp_path / "alone.tsv", "text\tlabel\n" + "".join(rows[:200]))  # the other rows stay where
    before = {s: {ex["text"] for ex in d} for s, d in load_task(task(name="d", train=alone), tmp_path).splits.items()}
    after = {s: {ex["text"] for ex in d} - {"the same review"} for s, d in data.splits.items()}
    assert after == before


def test_a_sampled_train_decides_the_labels_and_the_one_label_error_comes_first(tmp_path):
    """max_train could sample away the only rows of a label that validation / test still held (a class nothing
    learns); a train of one label was reported as an empty validation split when validation held the other."""
    rows = "".join(f"text {i}\tcommon\n" for i in range(40)) + "rare text\trare\n"
    tr = write(tmp_path / "tr.tsv", "text\tlabel\n" + rows + "".join(f"second {i}\tsecond\n" for i in range(40)))
    ev = write(tmp_path / "ev.tsv", "text\tlabel\nrare again\trare\ncommon again\tcommon\nsecond again\tsecond\n")
    full = load_task(task(name="s", train=tr, validation=ev, test=ev), tmp_path)
    assert full.labels == ["common", "rare", "second"]
    for seed in range(20):  # a sample without the rare row: rare is no class, its evaluation rows are dropped
        sampled = load_task(task(name="s", train=tr, validation=ev, test=ev, max_train=10, split_seed=seed), tmp_path)
        if "rare" not in {ex["label"] for ex in sampled.splits["train"]}:
            assert sampled.labels == ["common", "second"] and len(sampled.splits["test"]) == 2
            break
    else:
        raise AssertionError("no seed sampled the rare row away")
    one = write(tmp_path / "one.tsv", "text\tlabel\n" + "".join(f"a {i}\t1\n" for i in range(5)))
    zero = write(tmp_path / "zero.tsv", "text\tlabel\n" + "".join(f"b {i}\t0\n" for i in range(5)))
    with pytest.raises(TaskError, match=r"the train rows in one\.tsv hold one label \('1'; rows dropped: none\)"):
        load_task(task(name="o", train=one, validation=zero, test=zero), tmp_path)
