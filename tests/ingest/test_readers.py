from __future__ import annotations

import csv
import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from pipeline import documents
from pipeline.ingest import IngestConfig, IngestError, SourceConfig, run, split_huge
from pipeline.ingest.readers import Doc, Drop, read_delimited, read_jsonl, read_parquet, read_text_file
from pipeline.stage import StageContext


def items(reader, path, src):
    return list(reader(path, path.name, src))


def test_text_file_and_paragraphs(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("First para\nline two\n\n\nSecond para\n")
    [doc] = items(read_text_file, p, SourceConfig(name="t", kind="text", paths=["x"]))
    assert doc.text.startswith("First para") and doc.local_id == "a.txt"
    paras = items(read_text_file, p, SourceConfig(name="t", kind="text", paths=["x"], split="paragraph"))
    assert [d.text for d in paras] == ["First para\nline two", "Second para"]
    assert [d.meta["line"] for d in paras] == [1, 5]


def test_text_bad_encoding_and_empty(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok \xff\xfe broken")
    src = SourceConfig(name="t", kind="text", paths=["x"])
    assert items(read_text_file, bad, src) == [Drop("undecodable_bytes", "bad.txt", "invalid UTF-8 at byte 3")]
    replaced = items(read_text_file, bad, SourceConfig(name="t", kind="text", paths=["x"], encoding_errors="replace"))
    assert replaced[0].text == "ok \ufffd\ufffd broken"
    empty = tmp_path / "e.txt"
    empty.write_text("  \n")
    assert items(read_text_file, empty, src) == [Drop("empty_file", "e.txt")]


def _jsonl_lines():
    return [json.dumps({"text": "good one", "lang": "en"}), "{not json", json.dumps({"body": "x"}),
            json.dumps({"text": 5}), json.dumps({"text": "   "}), "", json.dumps({"text": "good two"})]


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".jsonl.zst"])
def test_jsonl_all_compressions_and_bad_lines(tmp_path, suffix):
    data = ("\n".join(_jsonl_lines()) + "\n").encode() + b'{"text": "\xff"}\n'
    p = tmp_path / f"d{suffix}"
    if suffix.endswith("gz"):
        data = gzip.compress(data)
    elif suffix.endswith("zst"):
        data = zstandard.ZstdCompressor().compress(data)
    p.write_bytes(data)
    out = items(read_jsonl, p, SourceConfig(name="j", kind="jsonl", paths=["x"]))
    docs = [i for i in out if isinstance(i, Doc)]
    drops = [(i.reason, i.where) for i in out if isinstance(i, Drop)]
    assert [d.text for d in docs] == ["good one", "good two"]
    assert docs[0].meta["lang"] == "en" and docs[1].local_id == f"{p.name}:7"
    assert drops == [("malformed_json", f"{p.name}:2"), ("missing_field", f"{p.name}:3"),
                     ("bad_field_type", f"{p.name}:4"), ("empty_text", f"{p.name}:5"),
                     ("undecodable_bytes", f"{p.name}:8")]


def test_a_json_array_file_is_a_document_per_element_and_null_text_is_empty(tmp_path):
    """A .json file holding an array was read line by line: some objects kept, the others malformed_json."""
    rows = [{"text": "first doc", "lang": "en"}, {"text": None}, {"body": "x"}, {"text": "second\ndoc"}]
    p = tmp_path / "a.json"
    p.write_text(json.dumps(rows, indent=2))
    out = items(read_jsonl, p, SourceConfig(name="j", kind="jsonl", paths=["x"]))
    docs = [i for i in out if isinstance(i, Doc)]
    assert [(d.local_id, d.text) for d in docs] == [("a.json:[0]", "first doc"), ("a.json:[3]", "second\ndoc")]
    assert docs[0].meta == {"lang": "en", "file": "a.json", "index": 0}
    assert [(i.reason, i.where) for i in out if isinstance(i, Drop)] == [("empty_text", "a.json:[1]"),
                                                                          ("missing_field", "a.json:[2]")]
    p.write_text(json.dumps(rows)[:-5])  # cut short: one drop that says nothing was read
    (bad,) = items(read_jsonl, p, SourceConfig(name="j", kind="jsonl", paths=["x"]))
    assert bad.reason == "malformed_json" and "nothing read" in bad.detail
    p.write_bytes(b"\xef\xbb\xbf" + json.dumps(rows[:1], indent=1).encode())  # a BOM before the array
    src = SourceConfig(name="j", kind="jsonl", paths=["x"])
    assert [type(i).__name__ for i in items(read_jsonl, p, src)] == ["Doc"]
    p.write_text("[]")
    assert [i.reason for i in items(read_jsonl, p, src)] == ["empty_file"]
    poems = tmp_path / "ci.json"  # chinese-poetry's layout: an array of poems, each a list of lines
    poems.write_text(json.dumps([{"paragraphs": ["春眠不觉晓，", "处处闻啼鸟。"]}, {"paragraphs": ["x", 1]}]))
    out = items(read_jsonl, poems, SourceConfig(name="p", kind="jsonl", paths=["x"], text_field="paragraphs"))
    assert out[0].text == "春眠不觉晓，\n处处闻啼鸟。" and out[1].reason == "bad_field_type"
    q = tmp_path / "n.jsonl"
    q.write_text('{"text": null}\n')  # as a Parquet null: no text
    assert [(i.reason, i.detail) for i in items(read_jsonl, q, SourceConfig(name="j", kind="jsonl", paths=["x"]))] \
        == [("empty_text", "'text' is null")]


def test_a_json_file_holding_one_object_is_one_document_or_one_drop(tmp_path):
    """A pretty-printed object (chinese-poetry's tangshisanbaishou.json) was read line by line: 3,811 drops."""
    src = SourceConfig(name="j", kind="jsonl", paths=["x"])
    p = tmp_path / "one.json"
    p.write_text(json.dumps({"title": "t", "text": "the whole\ndocument", "n": 3}, indent=2))
    (doc,) = items(read_jsonl, p, src)
    assert (doc.local_id, doc.text, doc.meta) == ("one.json", "the whole\ndocument", {"title": "t", "n": 3,
                                                                                      "file": "one.json"})
    p.write_text(json.dumps({"title": "t", "content": [{"text": "nested"}] * 50}, indent=2))
    (drop,) = items(read_jsonl, p, src)
    assert (drop.reason, drop.where) == ("missing_field", "one.json")
    assert "one JSON object with no field 'text' (its keys: title, content)" in drop.detail
    # JSON Lines in a .json file stay a record per line, a malformed first line included
    p.write_text('{"text": "a"}\n{"text": "b"}\n')
    assert [d.text for d in items(read_jsonl, p, src)] == ["a", "b"]
    p.write_text('{"text": "a"\n{"text": "b"}\n')
    assert [getattr(i, "where", None) or i.local_id for i in items(read_jsonl, p, src)] == [
        "one.json:1", "one.json:2"]
    q = tmp_path / "pretty.jsonl"  # a .jsonl file is JSON Lines whatever it holds
    q.write_text(json.dumps({"text": "x"}, indent=1))
    assert [i.reason for i in items(read_jsonl, q, src)] == ["malformed_json", "malformed_json", "malformed_json"]


def test_parquet_reader(tmp_path):
    p = tmp_path / "d.parquet"
    pq.write_table(pa.table({"content": ["a doc", "", None, "another"]}), p)
    src = SourceConfig(name="p", kind="parquet", paths=["x"], text_field="content")
    out = items(read_parquet, p, src)
    assert [(type(i).__name__, getattr(i, "reason", None)) for i in out] == [
        ("Doc", None), ("Drop", "empty_text"), ("Drop", "empty_text"), ("Doc", None)]
    wrong = items(read_parquet, p, SourceConfig(name="p", kind="parquet", paths=["x"]))
    assert wrong[0].reason == "missing_column" and "content" in wrong[0].detail
    junk = tmp_path / "junk.parquet"
    junk.write_text("not parquet")
    assert items(read_parquet, junk, src)[0].reason == "unreadable_file"
    cats = tmp_path / "c.parquet"  # a categorical (dictionary) column of strings is text
    pq.write_table(pa.table({"content": pa.array(["a doc", "a doc", "other"]).dictionary_encode()}), cats)
    assert [d.text for d in items(read_parquet, cats, src)] == ["a doc", "a doc", "other"]
    blobs = tmp_path / "b.parquet"  # a binary column: one drop for the file, not one per row with no detail
    pq.write_table(pa.table({"content": [b"x", b"y"]}), blobs)
    (drop,) = items(read_parquet, blobs, src)
    assert (drop.reason, drop.where) == ("bad_field_type", "b.parquet")
    assert "is binary, not text: 2 row(s)" in drop.detail


def test_csv_tsv_readers(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text('id,text\n1,"hello, world"\n2\n3,\n4,"multi\nline"\n')
    out = items(read_delimited, p, SourceConfig(name="c", kind="csv", paths=["x"]))
    assert [getattr(i, "text", None) or i.reason for i in out] == ["hello, world", "malformed_row", "empty_text",
                                                                  "multi\nline"]
    t = tmp_path / "d.tsv"
    t.write_text("a\tfirst\nb\tsecond\n")
    out = items(read_delimited, t, SourceConfig(name="t", kind="tsv", paths=["x"], header=False, text_field="1"))
    assert [d.text for d in out] == ["first", "second"]


def test_split_huge_keeps_every_char():
    text = ("para " * 50 + "\n\n") * 40
    parts = split_huge(text, 1000)
    assert "".join(parts) == text and all(len(p) <= 1000 for p in parts) and len(parts) > 5


def test_split_huge_cuts_at_the_best_break_never_inside_a_word():
    """A paragraph break, else a sentence end, else a line break, else a space. The last line break once always
    won over an earlier paragraph break, and a text without line breaks was cut mid-word (5 pieces, 4 of them
    then dropped by clean's terminal-punctuation rule)."""
    para = "\n".join(["line of paragraph one is here ok."] * 20) + "\n\n" + "\n".join(["second wraps its lines"] * 40)
    assert len(split_huge(para, 1000)[0]) == para.index("\n\n") + 2
    wrapped = "\n".join(["The keeper counted forty seven ships sailing past", "the rocky harbour. Then he slept"] * 30)
    assert all(p.endswith("harbour. ") for p in split_huge(wrapped, 1000)[:-1])  # a sentence end, not a line end
    prose = " ".join(["alpha bravo charlie delta"] * 300)
    parts = split_huge(prose, 1000)
    assert "".join(parts) == prose and all(p.endswith(" ") and len(p) > 500 for p in parts[:-1])
    assert [len(p) for p in split_huge("中文句子。" * 400, 1000)][0] == 1000  # CJK sentence ends
    assert [len(p) for p in split_huge("x" * 2500, 1000)] == [1000, 1000, 500]  # no break at all: a hard cut


def test_stage_several_sources_counts_and_errors(tmp_path):
    (tmp_path / "txt").mkdir()
    (tmp_path / "txt" / "a.txt").write_text("alpha text")
    (tmp_path / "txt" / "b.txt").write_text("")
    (tmp_path / "d.jsonl").write_text('{"text": "json doc"}\n{oops\n')
    cfg = IngestConfig(sources=[SourceConfig(name="notes", kind="text", paths=["txt/*.txt"]),
                                SourceConfig(name="js", kind="jsonl", paths=["d.jsonl"])], docs_per_shard=1)
    ctx = StageContext(name="ingest", key="k", out=tmp_path / "out", root=tmp_path)
    stats = run(cfg, ctx)
    assert stats["docs"] == 2 and stats["shards"] == 2
    assert stats["dropped.empty_file"] == 1 and stats["dropped.malformed_json"] == 1 and stats["dropped"] == 2
    rows = [r for t in documents.iter_tables(ctx.out) for r in t.to_pylist()]
    assert [(r["doc_id"], r["source"]) for r in rows] == [("notes:txt/a.txt", "notes"), ("js:d.jsonl:1", "js")]
    report = json.loads((ctx.out / "reports" / "drops.json").read_text())
    assert report["samples"]["malformed_json"][0]["where"] == "d.jsonl:2"
    with pytest.raises(IngestError, match="no file matches 'missing/\\*.txt'"):
        run(IngestConfig(sources=[SourceConfig(name="m", kind="text", paths=["missing/*.txt"])]),
            StageContext(name="ingest", key="k", out=tmp_path / "o2", root=tmp_path))
    (tmp_path / "e.jsonl").write_text("\n")
    with pytest.raises(IngestError, match="no documents"):
        run(IngestConfig(sources=[SourceConfig(name="e", kind="jsonl", paths=["e.jsonl"])]),
            StageContext(name="ingest", key="k", out=tmp_path / "o3", root=tmp_path))


def test_a_folders_files_of_another_kind_are_counted_not_silently_skipped(tmp_path):
    (tmp_path / "notes" / "sub").mkdir(parents=True)
    (tmp_path / "notes" / "a.txt").write_text("alpha text")
    (tmp_path / "notes" / "README").write_text("no suffix: text")
    (tmp_path / "notes" / "c.md").write_text("# markdown")
    (tmp_path / "notes" / "sub" / "d.log").write_text("log line")
    cfg = IngestConfig(sources=[SourceConfig(name="n", kind="text", paths=["notes"])])
    ctx = StageContext(name="ingest", key="k", out=tmp_path / "out", root=tmp_path)
    stats = run(cfg, ctx)
    assert stats["docs"] == 2 and stats["dropped.other_suffix"] == 2
    samples = json.loads((ctx.out / "reports" / "drops.json").read_text())["samples"]["other_suffix"]
    assert [d["where"] for d in samples] == ["notes/c.md", "notes/sub/d.log"]
    assert "not a text file (.txt, .text, .txt.gz)" in samples[0]["detail"]
    both = IngestConfig(sources=[SourceConfig(name="n", kind="text", paths=["notes"]),
                                 SourceConfig(name="m", kind="markdown", paths=["notes/c.md"])])
    stats = run(both, StageContext(name="ingest", key="k", out=tmp_path / "o3", root=tmp_path))
    assert stats["docs"] == 3 and stats["dropped.other_suffix"] == 1  # c.md is read by the other source
    js = tmp_path / "js"
    js.mkdir()
    (js / "a.json.gz").write_bytes(gzip.compress(b'{"text": "zipped json"}\n'))  # a jsonl suffix too
    stats = run(IngestConfig(sources=[SourceConfig(name="j", kind="jsonl", paths=["js"])]),
                StageContext(name="ingest", key="k", out=tmp_path / "o2", root=tmp_path))
    assert stats["docs"] == 1 and stats["dropped"] == 0


def test_default_corpus_is_real_stdlib_text(tmp_path):
    cfg = IngestConfig(sources=[SourceConfig(max_docs=30)])
    ctx = StageContext(name="ingest", key="k", out=tmp_path / "out", root=tmp_path)
    assert run(cfg, ctx)["docs"] == 30
    rows = [r for t in documents.iter_tables(ctx.out) for r in t.to_pylist()]
    ids = [r["doc_id"] for r in rows]
    assert ids == sorted(set(ids), key=ids.index)  # unique
    assert all(i.startswith("stdlib_docs:topic/") for i in ids)  # topics come first, sorted
    assert any("assert" in r["text"] for r in rows)
    assert json.loads(rows[0]["meta"])["kind"] == "topic"


def test_stdlib_module_pages():
    from pipeline.ingest import stdlib
    page, n = stdlib.module_page("m", '"""Mod doc."""\nclass A:\n    """A doc."""\n    def f(self, x=1):\n'
                                       '        """F doc."""\ndef _hidden():\n    """no"""\n')
    assert n == 3 and "class A\n    A doc." in page and "A.f(self, x=1)\n    F doc." in page
    assert "_hidden" not in page


def test_paragraphs_split_at_whitespace_only_lines_and_any_line_end(tmp_path):
    p = tmp_path / "p.txt"
    p.write_bytes(b"one\n   \ntwo a\r\ntwo b\r\n\t\r\nthree\r\rfour\n \n\n")
    paras = items(read_text_file, p, SourceConfig(name="t", kind="text", paths=["x"], split="paragraph"))
    assert [(d.text, d.meta["line"], d.local_id) for d in paras] == [
        ("one", 1, "p.txt:1"), ("two a\ntwo b", 3, "p.txt:3"), ("three", 6, "p.txt:6"), ("four", 8, "p.txt:8")]


def _surrogate_lines(tmp_path):
    p = tmp_path / "s.jsonl"
    p.write_text('{"text": "fine"}\n{"text": "bad \\ud800 text"}\n{"text": "ok", "note": "x\\udc00"}\n'
                 '{"text": "ok", "\\udfff": 1}\n{"text": "a pair \\ud83d\\ude00 is fine"}\n')
    return p


def test_jsonl_lone_surrogate_escapes_are_dropped_with_the_line(tmp_path):
    p = _surrogate_lines(tmp_path)
    out = items(read_jsonl, p, SourceConfig(name="j", kind="jsonl", paths=["x"]))
    assert [d.text for d in out if isinstance(d, Doc)] == ["fine", "a pair \U0001F600 is fine"]
    drops = [d for d in out if isinstance(d, Drop)]
    assert [(d.reason, d.where) for d in drops] == [("lone_surrogate", "s.jsonl:2"), ("lone_surrogate", "s.jsonl:3"),
                                                    ("lone_surrogate", "s.jsonl:4")]
    assert [d.detail.split(":")[0] for d in drops] == ["field 'text'", "field 'note'", "field name '\\udfff'"]


def test_jsonl_lone_surrogates_replaced_and_the_stage_writes_them(tmp_path):
    p = _surrogate_lines(tmp_path)
    src = SourceConfig(name="j", kind="jsonl", paths=[p.name], encoding_errors="replace")
    docs = items(read_jsonl, p, src)
    assert [d.text for d in docs][:3] == ["fine", "bad \ufffd text", "ok"]
    assert docs[2].meta["note"] == "x\ufffd" and "\ufffd" in docs[3].meta
    stats = run(IngestConfig(sources=[src]), StageContext(name="ingest", key="k", out=tmp_path / "o", root=tmp_path))
    assert stats["docs"] == 5 and stats["dropped"] == 0
    stats = run(IngestConfig(sources=[SourceConfig(name="j", kind="jsonl", paths=[p.name])]),
                StageContext(name="ingest", key="k", out=tmp_path / "o2", root=tmp_path))
    assert (stats["docs"], stats["dropped.lone_surrogate"]) == (2, 3)


def test_jsonl_provenance_wins_over_user_fields(tmp_path):
    p = tmp_path / "u.jsonl"
    p.write_text(json.dumps({"text": "a user doc", "file": "elsewhere.txt", "line": 7, "user_line": 0,
                             "module": "json"}) + "\n")
    [doc] = items(read_jsonl, p, SourceConfig(name="u", kind="jsonl", paths=["x"]))
    assert doc.meta == {"file": "u.jsonl", "line": 1, "user_file": "elsewhere.txt", "user_user_line": 7,
                        "user_line": 0, "module": "json"}


def test_jsonl_non_finite_numbers_stay_standard_json_in_meta(tmp_path):
    p = tmp_path / "n.jsonl"
    p.write_text('{"text": "a doc", "score": NaN, "big": 1e400, "low": -Infinity, "ok": 0.5}\n')
    [doc] = items(read_jsonl, p, SourceConfig(name="n", kind="jsonl", paths=["x"]))
    assert doc.meta == {"file": "n.jsonl", "line": 1, "score": "nan", "big": "inf", "low": "-inf", "ok": 0.5}
    json.dumps(doc.meta, allow_nan=False)  # raises on a NaN or an infinity


def test_tsv_fields_keep_their_quotes(tmp_path):
    t = tmp_path / "q.tsv"
    t.write_text('text\tlabel\n"Hi," she said.\t1\n"Wait\t0\nthird row\t1\nfourth row\t0\n')
    out = items(read_delimited, t, SourceConfig(name="t", kind="tsv", paths=["x"]))
    assert [(d.text, d.meta["line"]) for d in out] == [('"Hi," she said.', 2), ('"Wait', 3), ("third row", 4),
                                                      ("fourth row", 5)]


def test_csv_bad_quotes_drop_one_record_and_reading_goes_on(tmp_path):
    p = tmp_path / "q.csv"
    p.write_text('text,label\n"ab"c,1\nok,0\n"multi\nline",1\n"unclosed,1\nafter,0\nlast,1\n')
    out = items(read_delimited, p, SourceConfig(name="c", kind="csv", paths=["x"]))
    assert [(type(i).__name__, getattr(i, "text", None) or i.reason, i.where if isinstance(i, Drop) else i.local_id)
            for i in out] == [("Drop", "malformed_row", "q.csv:2"), ("Doc", "ok", "q.csv:3"),
                              ("Doc", "multi\nline", "q.csv:4"), ("Drop", "malformed_row", "q.csv:6"),
                              ("Doc", "after", "q.csv:7"), ("Doc", "last", "q.csv:8")]
    assert out[3].detail == "csv: unexpected end of data"
    # an unclosed quote that a later stray quote closes: the lines in between are read again, not lost
    p.write_text('text,label\n"never closed,1\nrow a,0\nrow b,1\nsays "hi",0\nrow c,1\n')
    out = items(read_delimited, p, SourceConfig(name="c", kind="csv", paths=["x"]))
    assert [getattr(i, "text", None) or f"{i.reason}@{i.where}" for i in out] == [
        "malformed_row@q.csv:2", "row a", "row b", 'says "hi"', "row c"]  # a quote inside a field is text


def test_csv_field_longer_than_csvs_default_limit(tmp_path):
    p = tmp_path / "big.csv"
    p.write_text("text\n" + "a" * 200_000 + "\nok\n")
    before = csv.field_size_limit(131_072)  # csv's default, whatever an earlier import set
    try:
        out = items(read_delimited, p, SourceConfig(name="c", kind="csv", paths=["x"]))
    finally:
        csv.field_size_limit(before)
    assert [len(d.text) for d in out] == [200_000, 2]


def _corrupt_gzip(data: bytes) -> bytes:
    z = bytearray(gzip.compress(data))
    z[10:18] = b"\xff" * 8  # the first deflate block header: zlib.error "invalid block type"
    return bytes(z)


def test_damaged_compressed_files_are_counted_drops_and_the_rest_is_kept(tmp_path):
    lines = b"".join(json.dumps({"text": f"document {i} " + "x" * (i % 97)}).encode() + b"\n" for i in range(3000))
    whole = gzip.compress(lines)
    (tmp_path / "a_truncated.jsonl.gz").write_bytes(whole[:len(whole) // 2])
    (tmp_path / "b_deflate.jsonl.gz").write_bytes(_corrupt_gzip(lines))
    (tmp_path / "c_corrupt.jsonl.zst").write_bytes(b"not a zstd frame")
    (tmp_path / "d_good.jsonl").write_text('{"text": "good"}\n')
    cut = zstandard.ZstdCompressor().compress(lines)  # cut short: it read as an empty file, or lost its tail
    (tmp_path / "e_cut.jsonl.zst").write_bytes(cut[:len(cut) // 2])
    first, second = (b"".join(lines.splitlines(keepends=True)[i:i + 100]) for i in (0, 100))
    two = zstandard.ZstdCompressor().compress(first) + zstandard.ZstdCompressor().compress(second)
    (tmp_path / "f_frames.jsonl.zst").write_bytes(two)  # two whole frames: every line
    ctx = StageContext(name="ingest", key="k", out=tmp_path / "out", root=tmp_path)
    stats = run(IngestConfig(sources=[SourceConfig(name="j", kind="jsonl", paths=["*.jsonl*"])]), ctx)
    samples = json.loads((ctx.out / "reports" / "drops.json").read_text())["samples"]["unreadable_file"]
    assert [(s["where"], s["detail"].split(":")[0]) for s in samples] == [
        ("a_truncated.jsonl.gz", "EOFError"), ("b_deflate.jsonl.gz", "error"), ("c_corrupt.jsonl.zst", "ZstdError"),
        ("e_cut.jsonl.zst", "EOFError")]
    kept = int(samples[0]["detail"].split("; the ")[1].split(" ")[0])
    kept_zst = int(samples[3]["detail"].split("; the ")[1].split(" ")[0])
    assert 0 < kept < 3000 and 0 <= kept_zst < 3000 and stats["dropped.unreadable_file"] == 4
    assert stats["docs"] == kept + 1 + kept_zst + 200
    rows = [r for t in documents.iter_tables(ctx.out) for r in t.to_pylist()]
    assert [r["text"] for r in rows[:kept]] == [json.loads(x)["text"] for x in lines.splitlines()[:kept]]
    assert samples[1]["detail"].endswith("the 0 document(s) read from this file before the error are kept")


def test_folders_and_globs_never_read_lmforges_own_outputs(tmp_path):
    """A corpus folder "data" or a glob "data/**" once read the last run's shards and saved config back in:
    the corpus grew every run and nothing was ever cached."""
    from pipeline.ingest.readers import resolve_paths
    mine = tmp_path / "data" / "web" / "a.jsonl"
    own = [tmp_path / "data" / "work" / "ingest" / "k" / "docs.jsonl", tmp_path / "data" / "runs" / "1-config.json",
           tmp_path / "mlruns" / "x.json"]
    for f in [mine, *own]:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text('{"text": "x"}\n')
    for paths in (["data"], ["data/**/*.json*"], [str(tmp_path / "**" / "*.json*")]):
        assert resolve_paths(SourceConfig(name="s", kind="jsonl", paths=paths), tmp_path) == [mine.resolve()]
    named = SourceConfig(name="s", kind="jsonl", paths=["data/work/ingest/k/docs.jsonl"])
    assert resolve_paths(named, tmp_path) == [own[0].resolve()]  # a file named exactly is read
    with pytest.raises(IngestError, match=r"matches only lmforge's own outputs \(1 file\(s\) under data/work"):
        resolve_paths(SourceConfig(name="s", kind="jsonl", paths=["data/work/**/*.jsonl"]), tmp_path)
