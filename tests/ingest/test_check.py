"""At planning: a source's text_field that names nothing in its files is a config error, not an emptied source."""
from __future__ import annotations

import gzip
import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import config
from pipeline.configtypes import ConfigError
from pipeline.plan import make_plan


def plan(root, source: dict) -> None:
    sources = json.dumps([{"name": "stdlib_docs", "kind": "stdlib_docs"}, source])
    make_plan(config.load("tiny", overrides=[f"ingest.sources={sources}"]), root / "data" / "work", root)


def test_a_misspelt_text_field_stops_the_run_naming_what_the_files_hold(tmp_path):
    rows = [{"body": f"document {i}", "id": i} for i in range(3)]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ConfigError, match=re.escape("ingest.sources[mine].text_field: 'text' is in none of the 1 "
                                                    "file(s) read: no field 'text' (its keys: body, id) (a.jsonl:1)")):
        plan(tmp_path, {"name": "mine", "kind": "jsonl", "paths": ["a.jsonl"]})
    plan(tmp_path, {"name": "mine", "kind": "jsonl", "paths": ["a.jsonl"], "text_field": "body"})
    pq.write_table(pa.table({"content": ["x", "y"]}), tmp_path / "b.parquet")
    with pytest.raises(ConfigError, match=re.escape("'contents' is in none of the 1 file(s) read: b.parquet has the "
                                                    "columns ['content']")):
        plan(tmp_path, {"name": "p", "kind": "parquet", "paths": ["b.parquet"], "text_field": "contents"})
    with gzip.open(tmp_path / "c.csv.gz", "wt") as f:
        f.write("\ufefftitle,body\nA,some text\n")
    with pytest.raises(ConfigError, match=re.escape("c.csv.gz has the header ['title', 'body']")):
        plan(tmp_path, {"name": "c", "kind": "csv", "paths": ["c.csv.gz"]})
    plan(tmp_path, {"name": "c", "kind": "csv", "paths": ["c.csv.gz"], "text_field": "body"})
    (tmp_path / "cr.csv").write_bytes(b'"title","body"\rA,"some, text"\rB,more\r')  # CR-only line ends
    with pytest.raises(ConfigError, match=re.escape("cr.csv has the header ['title', 'body']")):
        plan(tmp_path, {"name": "c", "kind": "csv", "paths": ["cr.csv"]})
    plan(tmp_path, {"name": "c", "kind": "csv", "paths": ["cr.csv"], "text_field": "body"})
    (tmp_path / "one.json").write_text(json.dumps({"body": "x"}))  # one value, parsed whole: not read at planning
    plan(tmp_path, {"name": "j", "kind": "jsonl", "paths": ["one.json"]})


def test_one_file_with_the_field_is_enough(tmp_path):
    """Records without the field are the stage's counted drops; only a field no file has is a typo."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "1.jsonl").write_text(json.dumps({"other": "x"}) + "\n")
    (tmp_path / "d" / "2.jsonl").write_text(json.dumps({"text": "y"}) + "\n")
    (tmp_path / "d" / "3.jsonl").write_text("not json\n")
    plan(tmp_path, {"name": "mixed", "kind": "jsonl", "paths": ["d"]})
    (tmp_path / "d" / "2.jsonl").unlink()
    with pytest.raises(ConfigError, match=r"in none of the 2 file\(s\) read: no field 'text' \(its keys: other\) "
                                          r"\(d/1\.jsonl:1\)$"):
        plan(tmp_path, {"name": "mixed", "kind": "jsonl", "paths": ["d"]})


@pytest.mark.parametrize("source, key", [
    ({"kind": "text", "paths": ["a.txt"], "text_field": "body"}, "text_field"),
    ({"kind": "jsonl", "paths": ["a.jsonl"], "header": False}, "header"),
    ({"kind": "parquet", "paths": ["a.parquet"], "split": "paragraph"}, "split"),
    ({"kind": "parquet", "paths": ["a.parquet"], "encoding_errors": "replace"}, "encoding_errors"),
])
def test_an_option_the_source_kind_does_not_read_is_refused(source, key):
    """Accepted, it changed the source's key: everything after ingest ran again for nothing."""
    from pipeline.configtypes import build
    from pipeline.ingest import SourceConfig
    with pytest.raises(ConfigError, match=rf"^ingest\.sources\[s\]\.{key}: got .*, but a {source['kind']} source does "
                                          r"not read it \(only .* sources do\); allowed: leave it out$"):
        build(SourceConfig, {"name": "s", **source})
