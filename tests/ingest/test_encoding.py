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
