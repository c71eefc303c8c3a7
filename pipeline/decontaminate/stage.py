"""Decontaminate stage: drop the pretraining documents that share a long n-gram with an evaluation text.

1. Index (in the parent): the validation and test texts of every configured task (``ctx.extra["tasks"]``,
   the default stdlib tasks included) are normalized and cut into word 13-grams (character 50-grams for
   scripts written without spaces); their 64-bit hashes go into one sorted array with, for each hash, the
   ``task:split`` sets that hold it.
2. Scan (per upstream shard, in worker processes, resumable): every kept document's windows are hashed the
   same way in numpy and looked up with one ``searchsorted`` per batch → ``docs/part-*.parquet``: the
   upstream shard's kept rows with ``drop_reason`` (null or ``contaminated``) and ``contamination`` (JSON:
   the matched ``task:split`` sets, the first shared n-gram, the number of shared windows; null when clean).
   Documents of the stdlib tasks' held-out units (a module or pydoc topic whose examples are all in an
   evaluation split) are dropped too, by their ingest meta, even when no n-gram is long enough to match.
3. Report: counts read back from the output shards, ``reports/decontaminate_report.json`` and
   ``reports/contaminated_samples.json``.
"""
from __future__ import annotations

from typing import Any

from pipeline import documents
from pipeline.decontaminate.config import DecontaminateConfig
from pipeline.decontaminate.index import EvalIndex, GramSpec, build_index
from pipeline.decontaminate.report import summarize
from pipeline.decontaminate.shards import ShardTask, decontaminate_shard, empty_shard
from pipeline.decontaminate.sources import eval_sources
from pipeline.dedup.shards import ShardPool
from pipeline.stage import StageContext

from pipeline.decontaminate import VERSION  # noqa: E402  (one definition, in the package)
__all__ = ["VERSION", "DecontaminateConfig", "run", "spec_of"]


def spec_of(cfg: DecontaminateConfig) -> GramSpec:
    return GramSpec(n={"word": cfg.word_ngram, "char": cfg.char_ngram},
                    min_len={"word": cfg.min_words, "char": cfg.min_chars})


def _index(cfg: DecontaminateConfig, ctx: StageContext) -> EvalIndex:
    if "tasks" not in ctx.extra:
        raise KeyError(f"stage {ctx.name} reads the 'tasks' config section, but ctx.extra has "
                       f"{sorted(ctx.extra)}; the stage registry must pass it (StageSpec sections)")
    ctx.note(f"reading the evaluation splits ({', '.join(cfg.splits)}) of {len(ctx.extra['tasks'].tasks)} task(s)")
    sources = eval_sources(ctx.extra["tasks"], cfg.splits, ctx.root)
    ctx.note(f"indexing the n-grams of {sum(len(t) for _, t in sources.texts):,} evaluation texts")
    return build_index(sources.texts, spec_of(cfg), sources.heldout if cfg.held_out_units else None)


def _scan_shards(ctx: StageContext, index: EvalIndex) -> None:
    inputs = documents.doc_shards(ctx.input("docs").path)
    todo = documents.pending_shards(ctx, len(inputs), empty_shard)
    if not todo:
        return
    progress = ctx.progress(total=len(todo), unit="shards")
    with ShardPool(ctx.workers) as pool:
        tasks = [ShardTask(str(inputs[i]), index) for i in todo]
        for step, (i, data) in enumerate(zip(todo, pool.map(decontaminate_shard, tasks))):
            ctx.write_shard(documents.shard_name(i), lambda tmp: tmp.write_bytes(data))
            ctx.tracker.log_metrics({"shards_done": step + 1}, step=step)
            progress.update(1)
    progress.close()


def run(cfg: DecontaminateConfig, ctx: StageContext) -> dict[str, Any]:
    index = _index(cfg, ctx)
    _scan_shards(ctx, index)
    counts, samples = summarize(ctx.out, cfg.sample_docs, cfg.sample_chars)
    stats: dict[str, Any] = {
        **counts,
        "eval_sources": len(index.names),
        "eval_texts": index.texts,
        "eval_texts_unprotected": index.unprotected,
        "eval_ngrams": int(len(index.keys)),
        "eval_ngrams_by_source": index.per_source,
        "held_out_units": len(index.heldout),
        "word_ngram": cfg.word_ngram, "char_ngram": cfg.char_ngram, "min_words": cfg.min_words,
        "min_chars": cfg.min_chars,
    }
    ctx.write_report("decontaminate_report.json", {**stats, "splits": cfg.splits, "sources": index.names,
                                                   "scan_lengths": index.lengths})
    ctx.write_report("contaminated_samples.json", samples)
    return stats
