"""Bytes that are not UTF-8 in a text source: what is dropped, what is kept, what is counted."""
from __future__ import annotations

from pipeline.ingest import IngestConfig, SourceConfig, run
from pipeline.ingest.readers import Drop, read_text_file
from pipeline.stage import StageContext


def items(reader, path, src):
    return list(reader(path, path.name, src))


def test_a_bad_byte_drops_its_paragraph_not_the_file(tmp_path):
    """With ``split: paragraph`` one bad byte dropped the whole file (every paragraph), where a JSON Lines file
    loses only its line; with ``encoding_errors: replace`` the replacements are counted."""
    p = tmp_path / "book.txt"
    p.write_bytes(b"\xef\xbb\xbfFirst paragraph.\r\n\r\nSecond has a bad\nbyte \xff here.\n\n\xc2\xa0\nThird one.\n")
    src = SourceConfig(name="t", kind="text", paths=["x"], split="paragraph")
    got = items(read_text_file, p, src)
    assert [type(x).__name__ for x in got] == ["Doc", "Drop", "Doc"]
    assert (got[0].text, got[2].text, got[2].meta["line"]) == ("First paragraph.", "Third one.", 7)
    assert got[1] == Drop("undecodable_bytes", "book.txt:3", "invalid UTF-8 in line 4: byte 0xff; the paragraph is "
                                                             "dropped")
    whole = items(read_text_file, p, SourceConfig(name="t", kind="text", paths=["x"]))  # one document: dropped
    assert whole == [Drop("undecodable_bytes", "book.txt", "invalid UTF-8 at byte 45")]  # counted with the BOM
    out = tmp_path / "out"
    stats = run(IngestConfig(sources=[SourceConfig(name="t", kind="text", paths=[str(p)], split="paragraph",
                                                   encoding_errors="replace")]),
                StageContext(name="ingest", key="k", out=out, root=tmp_path))
    assert stats["docs"] == 3 and stats["source.t.replacement_chars"] == 1


def test_utf16_and_utf32_files_with_a_byte_order_mark_are_read_as_text(tmp_path):
    """Spreadsheets save "Unicode text" as UTF-16 with a mark: it was dropped whole as invalid UTF-8."""
    from pipeline.ingest.readers import read_delimited, read_jsonl
    text = "Première partie.\r\n\r\nZweiter Absatz — 東京.\n"
    for codec in ("utf-16", "utf-16-be", "utf-32"):
        p = tmp_path / f"{codec}.txt"
        bom = b"\xfe\xff" if codec == "utf-16-be" else b""
        p.write_bytes(bom + text.encode(codec))
        got = items(read_text_file, p, SourceConfig(name="t", kind="text", paths=["x"], split="paragraph"))
        assert [d.text for d in got] == ["Première partie.", "Zweiter Absatz — 東京."], codec
    c = tmp_path / "c.csv"
    c.write_bytes('id,text\n1,"héllo, world"\n'.encode("utf-16"))
    assert [d.text for d in items(read_delimited, c, SourceConfig(name="c", kind="csv", paths=["x"]))] == [
        "héllo, world"]
    j = tmp_path / "j.jsonl"
    j.write_bytes('{"text": "ünï"}\n'.encode("utf-16"))
    assert items(read_jsonl, j, SourceConfig(name="j", kind="jsonl", paths=["x"])) == [Drop(  # (one drop, counted)
        "undecodable_bytes", "j.jsonl", "a UTF-16 byte-order mark: JSON is UTF-8 (RFC 8259); save the file as UTF-8")]
    bad = tmp_path / "bad.txt"  # an unpaired surrogate: counted as what it is, at its byte
    bad.write_bytes("ok\n".encode("utf-16") + b"\x00\xd8a\x00")
    assert items(read_text_file, bad, SourceConfig(name="t", kind="text", paths=["x"], split="paragraph")) == [
        Drop("undecodable_bytes", "bad.txt", "invalid UTF-16 at byte 8")]


def test_a_utf16_csv_header_is_checked_at_planning(tmp_path):
    import json

    import pytest

    from pipeline import config
    from pipeline.configtypes import ConfigError
    from pipeline.plan import make_plan
    (tmp_path / "u.csv").write_bytes("title,body\nA,some text\n".encode("utf-16"))

    def plan(field: str) -> None:
        sources = json.dumps([{"name": "c", "kind": "csv", "paths": ["u.csv"], "text_field": field}])
        make_plan(config.load("tiny", overrides=[f"ingest.sources={sources}"]), tmp_path / "data" / "work", tmp_path)
    with pytest.raises(ConfigError, match=r"u.csv has the header \['title', 'body'\]"):
        plan("text")
    plan("body")


def test_only_a_file_read_by_its_byte_order_mark_changes_the_corpus_key(tmp_path):
    """UTF-16 files were dropped as invalid UTF-8; their cached corpus must not be reused now that they are read.
    A UTF-8 file's key is what it was."""
    import hashlib

    from pipeline.ingest import fingerprint
    from pipeline.store import DIGESTS
    (tmp_path / "a.txt").write_text("plain text\n")
    (tmp_path / "b.txt").write_bytes("wide text\n".encode("utf-16"))
    cfg = lambda name: IngestConfig(sources=[SourceConfig(name="t", kind="text", paths=[name])])
    before = hashlib.sha256(f"a.txt|{DIGESTS.digest(tmp_path / 'a.txt')}\n".encode()).hexdigest()[:16]
    assert fingerprint(cfg("a.txt"), tmp_path) == before  # the formula before byte-order marks counted
    marked = hashlib.sha256(f"b.txt|{DIGESTS.digest(tmp_path / 'b.txt')}|utf-16\n".encode()).hexdigest()[:16]
    assert fingerprint(cfg("b.txt"), tmp_path) == marked


def test_a_gzipped_text_file_is_read_as_its_text(tmp_path):
    """It was read as raw bytes: one undecodable-bytes drop for the whole file."""
    import gzip
    p = tmp_path / "book.txt.gz"
    p.write_bytes(gzip.compress("First paragraph.\n\nSecond one.\n".encode()))
    got = items(read_text_file, p, SourceConfig(name="t", kind="text", paths=["x"], split="paragraph"))
    assert [d.text for d in got] == ["First paragraph.", "Second one."]


def test_utf16_without_its_mark_is_one_counted_drop_not_a_nul_laced_document(tmp_path):
    """It became one document of 'F\\x00i\\x00r\\x00s\\x00t...' (paragraphs lost; clean then stripped the NULs)."""
    p = tmp_path / "bare.txt"
    p.write_bytes("First paragraph.\n\nSecond one, a little longer.\n".encode("utf-16-le"))
    why = ("NUL bytes throughout: UTF-16 without its byte-order mark? Convert it to UTF-8 (e.g. iconv -f UTF-16LE, "
           "or UTF-16BE, -t UTF-8)")
    for split in ("file", "paragraph"):
        got = items(read_text_file, p, SourceConfig(name="t", kind="text", paths=["x"], split=split))
        assert got == [Drop("undecodable_bytes", "bare.txt", why)], split
    ok = tmp_path / "ok.txt"
    ok.write_bytes(b"a stray NUL \x00 in real text stays text\n")
    assert [d.text for d in items(read_text_file, ok, SourceConfig(name="t", kind="text", paths=["x"]))] == [
        "a stray NUL \x00 in real text stays text\n"]


def test_a_damaged_gzipped_text_file_is_counted_at_run_time_not_a_planning_crash(tmp_path):
    """Planning opened it for its byte-order mark and raised zlib.error (status and gc too)."""
    import gzip

    from pipeline.ingest import fingerprint
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("plain text\n")
    data = bytearray(gzip.compress(("some words " * 400).encode()))
    data[12:40] = bytes(b ^ 0xFF for b in data[12:40])
    (tmp_path / "notes" / "b.txt.gz").write_bytes(bytes(data))
    cfg = IngestConfig(sources=[SourceConfig(name="t", kind="text", paths=["notes"])])
    assert fingerprint(cfg, tmp_path)
    stats = run(cfg, StageContext(name="ingest", key="k", out=tmp_path / "out", root=tmp_path))
    assert stats["docs"] == 1 and stats["dropped"] == 1
