"""A folder's entries that are no regular file, a file reached under two names, and what a whole-file drop counts:
a black-box tester found the first two left out without a trace and the third counting a file as one row."""
from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.ingest import IngestConfig, IngestError, SourceConfig, run
from pipeline.stage import StageContext


def stage(tmp_path, *sources: SourceConfig, out: str = "out") -> tuple[dict, dict]:
    ctx = StageContext(name="ingest", key="k", out=tmp_path / out, root=tmp_path)
    stats = run(IngestConfig(sources=list(sources)), ctx)
    return stats, json.loads((ctx.out / "reports" / "drops.json").read_text())["samples"]


def test_a_link_to_nothing_and_a_named_pipe_in_a_folder_are_counted(tmp_path):
    d = tmp_path / "corp"
    d.mkdir()
    (d / "a.txt").write_text("a real document")
    (d / "broken.txt").symlink_to("gone.txt")
    (d / "broken.bz2").symlink_to("gone.bz2")  # another kind's suffix: other_suffix, as a file of it would be
    os.mkfifo(d / "pipe.txt")
    stats, samples = stage(tmp_path, SourceConfig(name="c", kind="text", paths=["corp"]))
    assert stats["docs"] == 1 and stats["dropped.unreadable_file"] == 2 and stats["dropped.other_suffix"] == 1
    got = {s["where"]: s["detail"] for s in samples["unreadable_file"]}
    assert got == {"corp/broken.txt": "a link to nothing (gone.txt does not exist), not a file to read",
                   "corp/pipe.txt": "a named pipe, not a file to read"}
    assert [s["where"] for s in samples["other_suffix"]] == ["corp/broken.bz2"]
    (d / "loop.txt").symlink_to("loop.txt")  # once a crash of the run, of planning and of status
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "b.txt").write_text("in a linked folder")
    (d / "linked").symlink_to(tmp_path / "more")
    stats, samples = stage(tmp_path, SourceConfig(name="c", kind="text", paths=["corp"]), out="o4")
    got = {s["where"]: s["detail"] for s in samples["unreadable_file"]}
    assert got["corp/loop.txt"] == "a link that loops, not a file to read"
    assert got["corp/linked"].startswith("a link to a folder (not followed")
    assert stats["docs"] == 1 and stats["dropped.unreadable_file"] == 4
    # a source of another kind over the same folder does not count them again (as other_suffix, or unreadable)
    (d / "r.jsonl").write_text('{"text": "a record"}\n')
    stats, samples = stage(tmp_path, SourceConfig(name="c", kind="text", paths=["corp"]),
                           SourceConfig(name="j", kind="jsonl", paths=["corp"]), out="o5")
    assert stats["dropped.unreadable_file"] == 4 and stats["source.j.dropped"] == 1
    assert [s["where"] for s in samples["other_suffix"]] == ["corp/broken.bz2", "corp/broken.bz2"]  # each source's
    for name in ("broken.txt", "pipe.txt"):  # named in paths: an error that says what it is
        with pytest.raises(IngestError, match=rf"'corp/{name}' is a (link to nothing|named pipe)"):
            stage(tmp_path, SourceConfig(name="c", kind="text", paths=[f"corp/{name}"]), out=name)


def test_a_file_reached_twice_is_read_once_and_the_second_name_counted(tmp_path):
    d = tmp_path / "corp"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("the one document")
    (d / "sub" / "link.txt").symlink_to(d / "a.txt")
    stats, samples = stage(tmp_path, SourceConfig(name="c", kind="text", paths=["corp", "corp/a.txt", "./corp"]))
    assert stats["docs"] == 1 and stats["dropped"] == 1  # the same path twice is no second name
    (drop,) = samples["same_file"]
    assert drop["where"] == "corp/sub/link.txt" and "the same file as corp/a.txt" in drop["detail"]
    stats, _ = stage(tmp_path, SourceConfig(name="c", kind="text", paths=["corp/a.txt"]), out="o2")
    assert stats["docs"] == 1 and stats["dropped"] == 0


def test_a_parquet_file_dropped_whole_counts_its_rows(tmp_path):
    pq.write_table(pa.table({"text": [1, 2, 3]}), tmp_path / "ints.parquet")
    pq.write_table(pa.table({"body": ["a", "b", "c", "d", "e"]}), tmp_path / "other.parquet")
    pq.write_table(pa.table({"text": ["kept"]}), tmp_path / "ok.parquet")
    stats, samples = stage(tmp_path, SourceConfig(name="p", kind="parquet", paths=["*.parquet"]))
    assert stats["docs"] == 1 and stats["dropped.bad_field_type"] == 3 and stats["dropped.missing_column"] == 5
    assert stats["dropped"] == 8 and stats["source.p.dropped"] == 8
    assert samples["missing_column"][0]["detail"].endswith("5 row(s) not read")


def test_a_folder_holding_only_lmforges_outputs_says_so(tmp_path):
    (tmp_path / "data" / "work" / "x").mkdir(parents=True)
    (tmp_path / "data" / "work" / "x" / "a.txt").write_text("an output, not corpus")
    with pytest.raises(IngestError, match=r"'data' matches only lmforge's own outputs \(1 file"):
        stage(tmp_path, SourceConfig(name="c", kind="text", paths=["data"]))
