"""Task files as other tools write them. UTF-16 or UTF-32 (a spreadsheet's "Unicode text"): read as text when a
byte-order mark names the codec; without one, every row holds NULs and is dropped, with its line, never trained on.
Integer tags (Hugging Face's ner_tags): ids into the task's label list."""
from __future__ import annotations

import pytest

from pipeline.tasks import TaskError, load_task
from pipeline.tasks.readers import NUL

from tasks.test_readers import drops_by_reason, task
from tasks.test_task_checks import plan_check

ROWS = [(f"a fine film number {i}" if i % 2 else f"a dull film, number {i}", "pos" if i % 2 else "neg")
        for i in range(40)]


def tsv(header: bool = True, newline: str = "\n") -> str:
    return "".join(f"{line}{newline}" for line in (["text\tlabel"] if header else [])
                   + [f"{t}\t{y}" for t, y in ROWS])


def load(name: str, root, **kw):
    return load_task(task(name="t", train=name, validation=name, test=name, **kw), root)


@pytest.mark.parametrize("codec, bom", [("utf-16", b""), ("utf-16-be", b"\xfe\xff"), ("utf-32", b"")])
def test_a_file_with_a_byte_order_mark_reads_as_its_utf8_twin(tmp_path, codec, bom):
    (tmp_path / "u8.tsv").write_text(tsv(newline="\r\n"))
    (tmp_path / "u16.tsv").write_bytes(bom + tsv(newline="\r\n").encode(codec))
    plan_check(tmp_path, train="u16.tsv")  # the header is read at planning
    twin, got = load("u8.tsv", tmp_path), load("u16.tsv", tmp_path)
    assert got.labels == twin.labels == ["neg", "pos"] and got.drops == []
    assert [[ex["text"] for ex in got.splits[s]] for s in got.splits] == [
        [ex["text"] for ex in twin.splits[s]] for s in twin.splits]
    conll = tmp_path / "n.conll"
    conll.write_bytes(bom + "EU B-ORG\r\nsays O\r\n\r\nPeter B-PER\r\nBlackburn I-PER\r\n".encode(codec))
    ner = load("n.conll", tmp_path, kind="tagging")
    assert [ex["tags"] for ex in ner.splits["train"]] == [["B-ORG", "O"], ["B-PER", "I-PER"]]


def test_without_its_mark_utf16_is_dropped_row_by_row_as_nul_text(tmp_path):
    """Read as UTF-8, UTF-16 is every other byte NUL: valid UTF-8, and the labels became '\\x000\\x00'..."""
    raw = tsv(header=False).encode("utf-16-le")
    (tmp_path / "nobom.tsv").write_bytes(raw)
    with pytest.raises(TaskError, match=r"no usable train rows in nobom.tsv \(41 dropped: \{'bad_encoding': 40, "
                       r"'missing_field': 1\}"):  # (the last line: the NUL after the last newline)
        load("nobom.tsv", tmp_path, header=False, text_field="0", label_field="1")
    mixed = tsv(header=False).encode() + "\ta NUL\tpos\n".replace("\t", "\x00", 1).encode()
    (tmp_path / "mixed.tsv").write_bytes(mixed)
    data = load("mixed.tsv", tmp_path, header=False, text_field="0", label_field="1")
    assert drops_by_reason(data) == {"bad_encoding": ["mixed.tsv:41"] * 3}  # (train, validation and test)
    assert data.drops[0].detail == NUL


def test_a_broken_utf16_row_is_dropped_with_its_line(tmp_path):
    body = tsv().encode("utf-16-le")
    tail = "odd \ud800 one\tpos\nlast one\tneg".encode("utf-16-le", "surrogatepass") + b"x"
    (tmp_path / "b.tsv").write_bytes(b"\xff\xfe" + body + tail)  # an unpaired surrogate, then a cut code unit
    data = load_task(task(name="t", train="b.tsv"), tmp_path)
    assert sorted(d.origin for d in data.drops if d.reason == "bad_encoding") == ["b.tsv:42", "b.tsv:43"]
    assert len(data.drops) == 2


def test_integer_tags_are_ids_into_the_listed_labels(tmp_path):
    """Hugging Face's ner_tags: ids, never a tag a scheme could read; every row was dropped as bad_tag_scheme."""
    import json
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    rows = [{"tokens": ["Peter", "Blackburn", "visits", "Paris"], "ner_tags": [1, 2, 0, 3]},
            {"tokens": ["Anna", "sleeps"], "ner_tags": [1, 0]}, {"tokens": ["x"], "ner_tags": [7]},
            {"tokens": ["y", "z"], "ner_tags": ["O", 0]}]
    (tmp_path / "ids.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    kw = {"kind": "tagging", "text_field": "tokens", "label_field": "ner_tags"}
    data = load("ids.jsonl", tmp_path, labels=labels, **kw)
    assert [ex["tags"] for ex in data.splits["train"]] == [["B-PER", "I-PER", "O", "B-LOC"], ["B-PER", "O"]]
    assert data.labels == labels
    details = {d.origin: (d.reason, d.detail) for d in data.drops}
    assert details["ids.jsonl:3"] == ("unknown_label", "tag id 7 is not one of the 5 labels' ids (0 to 4)")
    assert details["ids.jsonl:4"] == ("bad_field_type", "'ner_tags' mixes strings and integers")
    with pytest.raises(TaskError, match=r"no usable train rows in ids.jsonl \(4 dropped: .*; the first: ids.jsonl:1: "
                       r"'ner_tags' holds tag ids: the task's labels must list the tags they stand for, in id order"):
        load("ids.jsonl", tmp_path, **kw)


def test_a_json_file_holding_an_array_of_objects_is_a_record_each(tmp_path):
    """The usual .json layout (pandas' to_json(orient='records')) was refused as JSON Lines without objects."""
    import json
    from pipeline.configtypes import ConfigError
    records = [{"text": t, "label": y} for t, y in ROWS] + ["not an object"]
    (tmp_path / "a.json").write_text(json.dumps(records, indent=2))
    plan_check(tmp_path, train="a.json")
    data = load("a.json", tmp_path)
    twin = load_task(task(name="t", train=_tsv_file(tmp_path), validation=_tsv_file(tmp_path),
                          test=_tsv_file(tmp_path)), tmp_path)
    assert [ex["text"] for ex in data.splits["test"]] == [ex["text"] for ex in twin.splits["test"]]
    assert {(d.origin, d.reason) for d in data.drops} == {("a.json:[40]", "bad_json")}
    (tmp_path / "b.json").write_text(json.dumps([1, 2, 3]))
    with pytest.raises(ConfigError, match=r"'b.json' holds a JSON array with no object among its first 3 element"):
        plan_check(tmp_path, train="b.json")
    (tmp_path / "c.json").write_text('[{"text": "a", "label": "x"},\n oops]')
    with pytest.raises(ConfigError, match=r"^tasks.tasks\[t\]: c.json:2: the file is one JSON array, and it does "
                       r"not parse \(Expecting value\): nothing read$"):
        plan_check(tmp_path, train="c.json")


def _tsv_file(root) -> str:
    (root / "twin.tsv").write_text(tsv())
    return "twin.tsv"


def test_a_file_of_nothing_but_a_byte_order_mark_is_empty(tmp_path):
    from pipeline.configtypes import ConfigError
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf\r\n")
    with pytest.raises(ConfigError, match=r"^tasks.tasks\[t\].train: 'bom.csv' is empty$"):
        plan_check(tmp_path, train="bom.csv")


def test_an_unknown_label_shows_the_list_it_is_missing_from(tmp_path):
    """labels: [0.0, 1.0] (YAML floats, read as '0.0' and '1.0') dropped every row of a 0 / 1 file, and the error
    never showed what the list had become."""
    (tmp_path / "b.tsv").write_text("text\tlabel\n" + "".join(f"row {i}\t{i % 2}\n" for i in range(20)))
    with pytest.raises(TaskError, match=r"the first: b.tsv:2: label '0' is not in the label list \('0.0', '1.0'\)"):
        load("b.tsv", tmp_path, labels=["0.0", "1.0"])


def test_planning_names_an_empty_json_array_and_a_nul_laced_header(tmp_path):
    from pipeline.configtypes import ConfigError
    (tmp_path / "e.json").write_text("[]\n")
    with pytest.raises(ConfigError, match=r"^tasks.tasks\[t\]: 'e.json' is empty \(an empty JSON array\)$"):
        plan_check(tmp_path, train="e.json")
    (tmp_path / "h.tsv").write_bytes(tsv().encode("utf-16-le"))  # no byte-order mark: read as UTF-8, NULs
    with pytest.raises(ConfigError, match=r"no column 'text' in 'h.tsv' \(its header holds NUL characters, "
                       r"'t\\x00e\\x00.*: a UTF-16 file without its byte-order mark\?\)"):
        plan_check(tmp_path, train="h.tsv")
