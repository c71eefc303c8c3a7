"""Shard format: dtype choice at the uint16 boundary, schema, packing bounds, zero-copy reading."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from pipeline.tokenize.scripts import SCRIPTS, dominant_scripts
from pipeline.tokenize.shards import (DocBatch, ShardPacker, list_shards, open_shard, shard_schema, token_dtype,
                                      write_shard_file)


def batch_of(lengths: list[int], dtype=np.uint16, first_id: int = 0) -> DocBatch:
    lengths_arr = np.array(lengths, dtype=np.int64)
    tokens = (np.arange(lengths_arr.sum()) + first_id).astype(dtype)
    ids = pa.array([f"d{i}" for i in range(len(lengths))])
    return DocBatch(tokens, lengths_arr, ids, lengths_arr * 3, np.zeros(len(lengths), np.int8))


@pytest.mark.parametrize("vocab, dtype", [(255, np.uint16), (65_535, np.uint16), (65_536, np.uint16),
                                          (65_537, np.uint32), (1 << 20, np.uint32)])
def test_dtype_is_uint16_while_every_id_fits(vocab, dtype):
    assert token_dtype(vocab) == np.dtype(dtype)
    assert np.iinfo(token_dtype(vocab)).max >= vocab - 1


def test_schema_types_and_metadata():
    s16 = shard_schema(token_dtype(65_536), "val", "abc")
    s32 = shard_schema(token_dtype(65_537), "train", "abc")
    assert s16.field("tokens").type == pa.list_(pa.uint16())
    assert s32.field("tokens").type == pa.list_(pa.uint32())
    assert s16.names == ["tokens", "doc_id", "n_bytes", "script"]
    assert s16.metadata == {b"lmforge.split": b"val", b"lmforge.tokenizer": b"abc"}


def test_uint32_shard_roundtrips_ids_above_65535(tmp_path):
    batch = batch_of([3, 5, 2], dtype=np.uint32, first_id=70_000)
    schema = shard_schema(np.dtype(np.uint32), "train", "d")
    write_shard_file(tmp_path / "s.arrow", batch, schema)
    sh = open_shard(tmp_path / "s.arrow")
    assert sh.tokens.dtype == np.uint32 and sh.tokens.tolist() == list(range(70_000, 70_010))
    assert sh.offsets.tolist() == [0, 3, 8, 10] and sh.n_bytes.tolist() == [9, 15, 6]
    assert not sh.tokens.flags.owndata and not sh.tokens.flags.writeable  # a view into the mapped file
    reader = pa.ipc.open_file(pa.memory_map(str(tmp_path / "s.arrow")))
    assert reader.schema.equals(schema, check_metadata=True)


def test_packer_bounds_shards_and_ignores_batch_boundaries():
    lengths = [5, 1, 9, 3, 3, 3, 12, 2, 2, 7, 1]  # 12 > shard size: alone
    one = ShardPacker(10)
    shards_one = one.add(batch_of(lengths)) + [one.finish()]
    many = ShardPacker(10)
    shards_many = []
    for a, b in [(0, 2), (2, 3), (3, 7), (7, 11)]:
        shards_many += many.add(batch_of(lengths).slice(a, b))
    shards_many.append(many.finish())
    got = [s.lengths.tolist() for s in shards_one]
    assert got == [[5, 1], [9], [3, 3, 3], [12], [2, 2], [7, 1]]
    assert got == [s.lengths.tolist() for s in shards_many]
    assert [s.tokens.tolist() for s in shards_one] == [s.tokens.tolist() for s in shards_many]


def test_list_shards_refuses_gaps(tmp_path):
    (tmp_path / "train").mkdir()
    for name in ("part-00000.arrow", "part-00002.arrow"):
        (tmp_path / "train" / name).write_bytes(b"")
    with pytest.raises(ValueError, match="not numbered"):
        list_shards(tmp_path, "train")


def test_dominant_script_from_utf8_lead_bytes():
    texts = pa.array(["Hello world", "天地玄黃 ok", "привет мир", "Ελληνικά", "12345 !!", "", None,
                      "a" * 300 + "天" * 10])
    got = [SCRIPTS[i] for i in dominant_scripts(texts)]
    assert got == ["latin", "cjk", "cyrillic", "other", "other", "other", "other", "latin"]
    assert [SCRIPTS[i] for i in dominant_scripts(texts.slice(1, 2))] == ["cjk", "cyrillic"]
