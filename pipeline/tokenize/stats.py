"""Figures of the written shards, computed from the files themselves (so a resumed run counts everything).

Per split: tokens, documents, UTF-8 bytes, shards; compression (bytes per text token, EOS excluded);
the tokens-per-document histogram; vocabulary coverage (share of ids that occur); ``<unk>`` count; and the
share of byte-fallback tokens (newlines excluded) by the documents' dominant script.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.tokenize.scripts import SCRIPTS
from pipeline.tokenize.shards import list_shards, open_shard
from pipeline.tokenize.split import SPLITS
from pipeline.tokenize.tokenizer import Tokenizer


def histogram_edges(max_len: int) -> np.ndarray:
    """Powers of two from 1 past the longest document: tokens-per-document spans orders of magnitude."""
    top = max(1, int(np.ceil(np.log2(max(2, max_len + 1)))))
    return 2 ** np.arange(top + 1)


def shard_stats(folder: Path, tok: Tokenizer) -> dict[str, Any]:
    counts = np.zeros(tok.vocab_size, dtype=np.int64)
    # "\n" is always the byte piece <0x0A> (the trainer reads lines): count only bytes standing for
    # characters outside the vocabulary.
    is_byte = tok.byte_mask().astype(np.int32)
    is_byte[tok.piece_to_id("<0x0A>")] = 0
    splits: dict[str, Any] = {}
    lengths_by_split: dict[str, np.ndarray] = {}
    byte_tokens = np.zeros(len(SCRIPTS))
    text_tokens = np.zeros(len(SCRIPTS))
    docs_by_script = np.zeros(len(SCRIPTS), dtype=np.int64)
    for split in SPLITS:
        shards, lengths = [], []
        for path in list_shards(folder, split) if (folder / split).exists() else []:
            sh = open_shard(path)
            counts += np.bincount(sh.tokens, minlength=tok.vocab_size)
            doc_len = np.diff(sh.offsets).astype(np.int64)
            per_doc_bytes = np.add.reduceat(is_byte[sh.tokens], sh.offsets[:-1]) if len(doc_len) else doc_len
            scripts = sh.batch.column("script").indices.to_numpy(zero_copy_only=False)
            byte_tokens += np.bincount(scripts, weights=per_doc_bytes, minlength=len(SCRIPTS))
            text_tokens += np.bincount(scripts, weights=doc_len - 1, minlength=len(SCRIPTS))
            docs_by_script += np.bincount(scripts, minlength=len(SCRIPTS))
            lengths.append(doc_len)
            shards.append({"file": path.relative_to(folder).as_posix(), "tokens": int(len(sh.tokens)),
                           "documents": sh.n_docs, "bytes": int(sh.n_bytes.sum())})
        lengths_by_split[split] = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
        tokens = sum(s["tokens"] for s in shards)
        docs = sum(s["documents"] for s in shards)
        n_bytes = sum(s["bytes"] for s in shards)
        splits[split] = {"tokens": tokens, "documents": docs, "bytes": n_bytes,
                         "bytes_per_token": n_bytes / (tokens - docs) if tokens > docs else 0.0,
                         "shards": shards}
    all_lengths = np.concatenate(list(lengths_by_split.values()))
    edges = histogram_edges(int(all_lengths.max()) if len(all_lengths) else 1)
    total_text = sum(s["tokens"] - s["documents"] for s in splits.values())
    return {
        "splits": splits,
        "bytes_per_token": sum(s["bytes"] for s in splits.values()) / total_text if total_text else 0.0,
        "vocab_used": int((counts > 0).sum()),
        "vocab_coverage": float((counts > 0).mean()),
        "unk_tokens": int(counts[tok.unk_id]) if tok.unk_id is not None else 0,
        "byte_fallback_share": {s: float(byte_tokens[i] / text_tokens[i]) if text_tokens[i] else 0.0
                                for i, s in enumerate(SCRIPTS)},
        "byte_fallback_share_all": float(byte_tokens.sum() / text_tokens.sum()) if text_tokens.sum() else 0.0,
        "docs_by_script": {s: int(docs_by_script[i]) for i, s in enumerate(SCRIPTS)},
        "tokens_per_doc": {
            "edges": edges.tolist(),
            "counts": {s: np.histogram(v, bins=edges)[0].tolist() for s, v in lengths_by_split.items()},
            "quantiles": {q: float(np.quantile(all_lengths, float(q))) if len(all_lengths) else 0.0
                          for q in ("0.1", "0.5", "0.9", "0.99")},
            "max": int(all_lengths.max()) if len(all_lengths) else 0,
        },
    }
