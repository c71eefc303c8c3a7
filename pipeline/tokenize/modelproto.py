"""The few fields of a sentencepiece ``ModelProto`` this project reads, straight from the wire format.

sentencepiece's Python API has no ``is_user_defined`` and no model type; its ``*_pb2`` modules need
protobuf, which a GPU box may lack. The wire format is stable (``sentencepiece_model.proto``):
``ModelProto.pieces`` is field 1 (each ``SentencePiece`` has ``type``, field 3), ``trainer_spec`` is
field 2 (``model_type``, field 3).
"""
from __future__ import annotations

from typing import Iterator

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
MODEL_TYPES = {1: "unigram", 2: "bpe", 3: "word", 4: "char"}


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[i]
        value |= (b & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if b < 0x80:
            return value, i


def fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of a serialized message: ints for varints, bytes otherwise."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        wire = key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            size, i = _varint(buf, i)
            value, i = buf[i:i + size], i + size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, i = buf[i:i + size], i + size
        else:
            raise ValueError(f"not a sentencepiece model: protobuf wire type {wire}")
        yield key >> 3, value


def piece_types(model: bytes) -> list[int]:
    """Each piece's type, in id order (NORMAL when the field is absent, its proto default)."""
    types = []
    for number, piece in fields(model):
        if number == 1:
            types.append(next((v for n, v in fields(piece) if n == 3), NORMAL))
    return types


def model_type(model: bytes) -> str:
    spec = next((v for n, v in fields(model) if n == 2), b"")
    kind = next((v for n, v in fields(spec) if n == 3), 1)  # the proto default is UNIGRAM
    return MODEL_TYPES.get(kind, "unknown")
