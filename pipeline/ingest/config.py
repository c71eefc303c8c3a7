"""Ingest configuration: named sources of documents."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pipeline.configtypes import ConfigError, bounded, non_default

SourceKind = Literal["stdlib_docs", "stdlib_source", "text", "markdown", "jsonl", "parquet", "csv", "tsv"]


@dataclass(frozen=True)
class SourceConfig:
    """One named source.

    ``kind``: ``stdlib_docs`` (pydoc topics + docstrings of the standard library: the built-in default
    corpus), ``stdlib_source`` (the standard library's .py files), or files: ``text`` / ``markdown``
    (one document per file, or per paragraph with ``split: paragraph``: paragraphs are separated by a line that
    is empty or whitespace only), ``jsonl`` (.jsonl, .jsonl.gz, .jsonl.zst; ``text_field``), ``parquet``,
    ``csv`` / ``tsv`` (``text_field`` is a column name, or a 0-based index when ``header`` is false; TSV has no
    quoting, so a field keeps its quotes verbatim).
    """
    name: str = "stdlib_docs"
    kind: SourceKind = "stdlib_docs"
    paths: list[str] = field(default_factory=list)  # files, folders or glob patterns (** allowed)
    text_field: str = "text"
    split: Literal["file", "paragraph"] = "file"
    header: bool = True
    encoding_errors: Literal["drop", "replace"] = "drop"
    max_docs: int | None = bounded(None, ge=1)  # a deterministic prefix, for quick looks

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in ":/\\ "):
            raise ConfigError(f"ingest.sources.name: got {self.name!r}, allowed: a non-empty name "
                              "without ':', '/', '\\' or spaces")
        if self.kind.startswith("stdlib") and self.paths:
            raise ConfigError(f"ingest.sources[{self.name}].paths: a {self.kind} source takes no paths")
        if not self.kind.startswith("stdlib") and not self.paths:
            raise ConfigError(f"ingest.sources[{self.name}].paths: a {self.kind} source needs at least one path")
        reads = {"text_field": ("jsonl", "parquet", "csv", "tsv"), "header": ("csv", "tsv"),
                 "split": ("text", "markdown"), "encoding_errors": ("text", "markdown", "jsonl", "csv", "tsv")}
        for key in non_default(self, [k for k, kinds in reads.items() if self.kind not in kinds]):
            raise ConfigError(f"ingest.sources[{self.name}].{key}: got {getattr(self, key)!r}, but a {self.kind} "
                              f"source does not read it (only {', '.join(reads[key])} sources do); allowed: leave it "
                              "out")  # set, it would change the source's key and rerun everything for nothing


@dataclass(frozen=True)
class IngestConfig:
    sources: list[SourceConfig] = field(default_factory=lambda: [SourceConfig()])
    docs_per_shard: int = bounded(2000, ge=1)
    max_doc_chars: int = bounded(200_000, ge=1000)  # longer documents are split at paragraph breaks
    samples_per_reason: int = bounded(5, ge=0)

    def __post_init__(self) -> None:
        if not self.sources:
            raise ConfigError("ingest.sources: got [], allowed: at least one source")
        names = [s.name for s in self.sources]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"ingest.sources: duplicate source name {dup[0]!r}; names must be unique")
