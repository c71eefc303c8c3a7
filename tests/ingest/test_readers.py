from __future__ import annotations

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
