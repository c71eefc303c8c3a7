"""``Tokenizer``: the project's sentencepiece model with its special ids; imports sentencepiece and numpy only.

``decode(encode(text)) == text`` for every string of Unicode scalar values (lone surrogates cannot be
UTF-8 encoded and raise ``UnicodeEncodeError``): the model uses identity normalisation, keeps every
space, adds no dummy prefix, and falls back to bytes for characters outside its pieces. The two inputs
sentencepiece itself would alter or misread (``▁`` and the text of user-defined symbols) are escaped
to byte pieces (see ``segment``). Special ids therefore never come from text.

Special ids: ``<pad>`` 0, ``<unk>`` 1, ``<s>`` 2, ``</s>`` 3 (control pieces: they decode to nothing),
then the user-defined ``<mask>`` 4, ``<sep>`` 5, ``<cls>`` 6, ``<extra_id_0>`` 7, ... (they decode to
their text). A reused model may lack some: the properties are then None.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import sentencepiece as spm

from pipeline.tokenize import modelproto, segment

MODEL_FILE = "tokenizer.model"
VOCAB_FILE = "tokenizer.vocab"
NAMED_SPECIALS = {"mask": "<mask>", "sep": "<sep>", "cls": "<cls>"}
# Piece kinds: TEXT (normal pieces), BYTE (<0x00>..<0xFF>), CONTROL (control, unknown, unused: decode to
# nothing), USER (user-defined symbols: <mask>, <sep>, <cls>, <extra_id_N>, ...).
TEXT, BYTE, CONTROL, USER = 0, 1, 2, 3
_KINDS = {modelproto.NORMAL: TEXT, modelproto.BYTE: BYTE, modelproto.USER_DEFINED: USER}


def sentinel(i: int) -> str:
    return f"<extra_id_{i}>"


def model_digest(model_bytes: bytes) -> str:
    """A tokenizer's identity: the digest of its sentencepiece model file (the shards' meta records it)."""
    return hashlib.blake2b(model_bytes, digest_size=16).hexdigest()


class Tokenizer:
    """A sentencepiece model plus what the trainers need: special ids, byte pieces, bytes per id."""

    def __init__(self, model: bytes | str | Path):
        self.model_bytes = model if isinstance(model, bytes) else Path(model).read_bytes()
        self.sp = spm.SentencePieceProcessor(model_proto=self.model_bytes)
        self.vocab_size = self.sp.vocab_size()
        self.digest = model_digest(self.model_bytes)
        self.pieces = [self.sp.id_to_piece(i) for i in range(self.vocab_size)]
        types = modelproto.piece_types(self.model_bytes)
        assert len(types) == self.vocab_size, f"{len(types)=} {self.vocab_size=}"
        self.kinds = np.array([_KINDS.get(t, CONTROL) for t in types], dtype=np.int8)
        ids = dict(pad=self.sp.pad_id(), unk=self.sp.unk_id(), bos=self.sp.bos_id(), eos=self.sp.eos_id())
        ids.update({name: self._named(piece) for name, piece in NAMED_SPECIALS.items()})
        self.special_ids = {k: v for k, v in ids.items() if v is not None and v >= 0}
        self.sentinel_ids: list[int] = []
        while (i := self._named(sentinel(len(self.sentinel_ids)))) is not None:
            self.sentinel_ids.append(i)
        self._byte_id = np.array([self.sp.piece_to_id(f"<0x{b:02X}>") for b in range(256)], dtype=np.int32)
        self.has_byte_fallback = bool(np.all(self.kinds[self._byte_id] == BYTE))
        user = [self.pieces[i] for i in np.flatnonzero(self.kinds == USER)]
        self._escape = segment.escape_pattern(user) if self.has_byte_fallback else None
        self._user_probe = segment.probe_pattern(user) if self.has_byte_fallback else None
        self.model_type = modelproto.model_type(self.model_bytes)
        # Chunking pays for BPE only: unigram's cost is linear in the input, and there the extra calls
        # cost ~15% (bench/tokenize.py corpus).
        self.chunk_chars = segment.CHUNK_CHARS if self.model_type == "bpe" and self._chunks_keep_ids() else None

    @classmethod
    def from_dir(cls, folder: str | Path) -> "Tokenizer":
        """Load from a tokenize output, a checkpoint, or a tokenizer folder (or the .model file itself)."""
        folder = Path(folder)
        for p in (folder, folder / MODEL_FILE, folder / "tokenizer" / MODEL_FILE):
            if p.is_file():
                return cls(p)
        raise FileNotFoundError(f"no {MODEL_FILE} in {folder} or {folder / 'tokenizer'}")

    # ids ---------------------------------------------------------------------------------------
    @property
    def pad_id(self) -> int | None: return self.special_ids.get("pad")
    @property
    def unk_id(self) -> int | None: return self.special_ids.get("unk")
    @property
    def bos_id(self) -> int | None: return self.special_ids.get("bos")
    @property
    def eos_id(self) -> int | None: return self.special_ids.get("eos")
    @property
    def mask_id(self) -> int | None: return self.special_ids.get("mask")
    @property
    def sep_id(self) -> int | None: return self.special_ids.get("sep")
    @property
    def cls_id(self) -> int | None: return self.special_ids.get("cls")

    @property
    def all_special_ids(self) -> list[int]:
        """Every id that is not text: control, unknown, unused, user-defined (never masked, 0 bytes)."""
        return np.flatnonzero((self.kinds == CONTROL) | (self.kinds == USER)).tolist()

    def byte_mask(self) -> np.ndarray:
        """``mask[id]`` is True for the 256 byte-fallback pieces."""
        return self.kinds == BYTE

    def token_bytes(self) -> np.ndarray:
        """UTF-8 bytes each id stands for in decoded text (0 for special ids): sums to the text's bytes."""
        out = np.zeros(self.vocab_size, dtype=np.int32)
        for i in np.flatnonzero(self.kinds == TEXT):
            out[i] = len(self.pieces[i].replace(segment.META, " ").encode("utf-8"))
        out[self.kinds == BYTE] = 1
        return out

    def id_to_piece(self, i: int) -> str:
        return self.pieces[int(i)]

    def piece_to_id(self, piece: str) -> int:
        return self.sp.piece_to_id(piece)

    # encode / decode ---------------------------------------------------------------------------
    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        flat, _ = self.encode_flat([text], bos=bos, eos=eos)
        return flat.tolist()

    def encode_batch(self, texts: Sequence[str], bos: bool = False, eos: bool = False,
                     num_threads: int = 1) -> list[list[int]]:
        flat, lengths = self.encode_flat(texts, bos=bos, eos=eos, num_threads=num_threads)
        return [a.tolist() for a in np.split(flat, np.cumsum(lengths)[:-1])] if len(texts) else []

    def encode_flat(self, texts: Sequence[str], bos: bool = False, eos: bool = False,
                    num_threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """All texts' ids back to back (int32) and each text's length: no Python int per token.

        Two multi-threaded sentencepiece calls at most: one for the plain texts (the common case), one
        for all the strings of the texts that need an escape or are long enough to chunk; the pieces
        are reassembled in order. (Every call hands work to a new C++ thread pool: on a loaded box a
        call per text would cost more in hand-offs than in encoding.)
        """
        texts = texts if isinstance(texts, list) else list(texts)
        kw = dict(out_type="numpy", num_threads=num_threads)
        parts = {i: segment.parts(t, self._escape, self.chunk_chars) for i, t in enumerate(texts)
                 if self._needs_parts(t)}
        plain = [t for i, t in enumerate(texts) if i not in parts] if parts else texts
        plain_arrays = iter(self._sp_encode(plain, add_bos=bos, add_eos=eos, **kw) if plain else [])
        strings = [p for pieces in parts.values() for p in pieces if isinstance(p, str)]
        part_arrays = iter(self._sp_encode(strings, **kw) if strings else [])
        arrays = [self._assemble(parts[i], part_arrays, bos, eos) if i in parts else next(plain_arrays)
                  for i in range(len(texts))]
        if not arrays:
            return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int64)
        lengths = np.fromiter((a.size for a in arrays), dtype=np.int64, count=len(arrays))
        return np.concatenate(arrays), lengths

    def decode(self, ids: Iterable[int]) -> str:
        return self.sp.decode([int(i) for i in ids])

    def decode_batch(self, batch: Iterable[Iterable[int]]) -> list[str]:
        return [self.decode(ids) for ids in batch]

    # internals ---------------------------------------------------------------------------------
    def _needs_parts(self, text: str) -> bool:
        if self.chunk_chars is not None and len(text) > self.chunk_chars:
            return True
        # '▁' in text is a fast scan (and O(1) for a 1-byte-wide str); the probe regex starts with a
        # literal '<', which re scans for quickly: 8x cheaper than searching the full escape pattern.
        if self._escape is None:
            return False
        return segment.META in text or (self._user_probe is not None and self._user_probe.search(text) is not None)

    def _sp_encode(self, texts: list[str], **kw) -> list[np.ndarray]:
        try:
            return self.sp.encode(texts, **kw)
        except TypeError:
            # sentencepiece says only "List elements must be str or bytes"; name the real problem.
            for t in texts:
                if not isinstance(t, str):
                    raise TypeError(f"cannot encode a {type(t).__name__}: texts must be str") from None
                t.encode("utf-8")  # a lone surrogate raises UnicodeEncodeError with its position
            raise

    def _assemble(self, pieces: list[str | bytes], encoded: Iterator[np.ndarray], bos: bool,
                  eos: bool) -> np.ndarray:
        """One text's ids from its parts: the next encoded array for each string, byte ids for bytes."""
        arrays = [next(encoded) if isinstance(p, str) else self._byte_id[np.frombuffer(p, dtype=np.uint8)]
                  for p in pieces]
        if bos:
            arrays.insert(0, np.array([self.sp.bos_id()], dtype=np.int32))
        if eos:
            arrays.append(np.array([self.sp.eos_id()], dtype=np.int32))
        return np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int32)

    def _named(self, piece: str) -> int | None:
        i = self.sp.piece_to_id(piece)
        return i if self.pieces[i] == piece and self.kinds[i] == USER else None

    def _chunks_keep_ids(self) -> bool:
        """Chunking is on only if no piece can cross a cut, checked on the vocabulary and on a probe."""
        inner_meta = re.compile(f"[^{segment.META}]{segment.META}")
        for i in np.flatnonzero(self.kinds == TEXT):
            if "\n" in self.pieces[i] or inner_meta.search(self.pieces[i]):
                return False
        probe = "ab cd\n  ef  gh\ni\n\n j"
        whole = self.sp.encode(probe)
        cut = [0, *segment.cut_points(probe, 3), len(probe)]
        pieces = sum((self.sp.encode(probe[a:b]) for a, b in zip(cut, cut[1:])), [])
        return pieces == whole and self.sp.decode(whole) == probe
