"""Task files that are broken in the ways real files are: BOMs, bytes that are not UTF-8, ragged rows, stray
and unclosed quotes, values of the wrong JSON type, empty tokens. Each is read right or counted with its line."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.configtypes import ConfigError
from pipeline.tasks import load_task
from pipeline.tasks.load import _label_order

from tasks.test_readers import drops_by_reason, task


def put(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return path.name


def load(tmp_path: Path, name: str, **kw):
    return load_task(task(name="t", train=name, validation=name, test=name, **kw), tmp_path)


BOM = b"\xef\xbb\xbf"


def test_a_bom_is_not_part_of_the_first_column_line_or_token(tmp_path):
    csv_ = put(tmp_path / "b.csv", BOM + b"text,label\nfine,pos\nbad,neg\n")
    assert load(tmp_path, csv_).splits["train"][0] == {"text": "fine", "label": "pos", "origin": "b.csv:2"}
    js = put(tmp_path / "b.jsonl", BOM + b'{"text": "one", "label": "a"}\n{"text": "two", "label": "b"}\n')
    data = load(tmp_path, js)
    assert [ex["text"] for ex in data.splits["train"]] == ["one", "two"] and data.drops == []
    conll = put(tmp_path / "b.conll", BOM + b"-DOCSTART- O\n\nEU B-ORG\nsays O\n")
    data = load(tmp_path, conll, kind="tagging")
    assert [ex["tokens"] for ex in data.splits["train"]] == [["EU", "says"]]


def test_bytes_that_are_not_utf8_drop_their_row_with_its_line(tmp_path):
    csv_ = put(tmp_path / "l.csv", b"text,label\ncaf\xe9 cr\xe8me,pos\nplain,neg\nmore,pos\n")
    data = load(tmp_path, csv_)
    assert [ex["text"] for ex in data.splits["train"]] == ["plain", "more"]
    assert drops_by_reason(data)["bad_encoding"][0] == "l.csv:2"
    js = put(tmp_path / "l.jsonl", b'{"text": "na\xefve", "label": "a"}\n{"text": "ok", "label": "a"}\n'
                                   b'{"text": "lone \\ud800 escape", "label": "a"}\n{"text": "also", "label": "b"}\n')
    data = load(tmp_path, js)
    assert [ex["text"] for ex in data.splits["train"]] == ["ok", "also"]
    assert drops_by_reason(data)["bad_encoding"][:2] == ["l.jsonl:1", "l.jsonl:3"]
    conll = put(tmp_path / "l.conll", b"Z\xfcrich B-LOC\n\nBerlin B-LOC\n")
    data = load(tmp_path, conll, kind="tagging")
    assert [ex["tokens"] for ex in data.splits["train"]] == [["Berlin"]]
    assert drops_by_reason(data)["bad_encoding"][0] == "l.conll:1"


def test_ragged_rows_are_dropped_not_read_from_shifted_columns(tmp_path):
    csv_ = put(tmp_path / "r.csv", b"text,label\nhello, world,neg\nfine,pos\n,\ngood,neg\n")
    data = load(tmp_path, csv_)
    assert data.labels == ["neg", "pos"] and [ex["text"] for ex in data.splits["train"]] == ["fine", "good"]
    by = drops_by_reason(data)
    assert by["ragged_row"][0] == "r.csv:2"
    assert by["missing_label"][0] == "r.csv:4"  # a row of empty fields is counted, not skipped
    assert [d.detail for d in data.drops if d.reason == "missing_label"][0] == "label_field 'label': absent or empty"
    rows = b"".join(b"sentence %d\t%d\n" % (i, i % 2) for i in range(6)) + b"this row lost its label\n"
    tsv = put(tmp_path / "r.tsv", rows)
    data = load(tmp_path, tsv, header=False, text_field="0", label_field="-1")
    assert data.labels == ["0", "1"]
    assert drops_by_reason(data)["ragged_row"][0] == "r.tsv:7"
    conll = put(tmp_path / "r.conll", b"EU NNP B-NP B-ORG\nGerman JJ B-NP\n\nPeter NNP B-NP B-PER\n")
    data = load(tmp_path, conll, kind="tagging", token_column=0, tag_column=-1)
    assert [ex["tokens"] for ex in data.splits["train"]] == [["Peter"]]
    assert drops_by_reason(data)["misaligned_tags"][0] == "r.conll:2"
    assert "B-NP" not in data.labels


def test_quotes_a_record_over_lines_and_long_fields(tmp_path):
    long = b"x" * 200_000
    csv_ = put(tmp_path / "q.csv", b'text,label\n"three\nline\nfield",pos\n"abc"def,neg\nnext,neg\n' + long + b",pos\n")
    data = load(tmp_path, csv_)
    train = data.splits["train"]
    assert [ex["origin"] for ex in train] == ["q.csv:2", "q.csv:6", "q.csv:7"]  # where each record starts
    assert len(train[2]["text"]) == 200_000
    assert drops_by_reason(data)["malformed_row"][0] == "q.csv:5"
    rows = b"".join(b"r%d,%s\n" % (i, [b"pos", b"neg"][i % 2]) for i in range(20))
    bad = put(tmp_path / "u.csv", b"text,label\nok,pos\n\"never closed,neg\n" + rows)
    data = load(tmp_path, bad)  # the unclosed quote loses its own record, not the 20 rows after it
    assert [ex["text"] for ex in data.splits["train"]] == ["ok"] + [f"r{i}" for i in range(20)]
    assert drops_by_reason(data)["malformed_row"][0] == "u.csv:3"


def test_json_values_of_the_wrong_type_are_dropped_not_turned_into_their_repr(tmp_path):
    rows = [{"text": ["a", "list"], "label": "x"}, {"text": {"k": 1}, "label": "x"}, {"text": "ok", "label": 3},
            {"text": "fine", "label": ["x"]}, {"text": 12, "label": "x"}, {"text": "whole", "label": 1.0},
            {"text": "half", "label": 1.5}]
    js = put(tmp_path / "w.jsonl", "\n".join(json.dumps(r) for r in rows).encode() + b"\n")
    data = load(tmp_path, js)
    assert data.splits["train"] == [{"text": "ok", "label": "3", "origin": "w.jsonl:3"},
                                    {"text": "whole", "label": "1", "origin": "w.jsonl:6"}]  # pandas' 1.0 is 1
    assert drops_by_reason(data)["bad_field_type"][:5] == ["w.jsonl:1", "w.jsonl:2", "w.jsonl:4", "w.jsonl:5",
                                                            "w.jsonl:7"]
    tags = [{"tokens": ["", "file"], "tags": ["B-X", "O"]}, {"tokens": ["a", 1], "tags": ["O", "O"]},
            {"tokens": ["a", "b"], "tags": ["B-X", "I-X"]}]
    js = put(tmp_path / "g.jsonl", "\n".join(json.dumps(r) for r in tags).encode() + b"\n")
    data = load(tmp_path, js, kind="tagging", text_field="tokens", label_field="tags")
    assert [ex["tokens"] for ex in data.splits["train"]] == [["a", "b"]]
    by = drops_by_reason(data)
    assert by["empty_text"][0] == "g.jsonl:1" and by["bad_field_type"][0] == "g.jsonl:2"


def test_integer_labels_have_one_order_whatever_the_hash_seed():
    assert _label_order({"2", "1", "01", "-3"}) == ["-3", "01", "1", "2"]
    assert _label_order({"²", "1"}) == ["1", "²"]  # not an integer: sorted as strings, no crash


def test_a_tag_list_without_o_is_a_config_error():
    with pytest.raises(ConfigError, match=r"labels: got \['B-X', 'I-X'\], allowed: a tag list that holds 'O'"):
        task(name="t", kind="tagging", train="x.conll", labels=["B-X", "I-X"])
