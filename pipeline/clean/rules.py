"""The filter rules: each one a threshold over one attribute column, applied vectorized per shard.

A document is dropped by the FIRST rule in ``RULES`` order that applies to it and fails; its
``drop_reason`` is that rule's name. Which rules apply to a document depends on its source (prose,
code, or an explicit list; see ``CleanConfig``), for the word-based rules on its script, and for the
statistical ones (ratios, repetition) on its length: Gopher calibrated them on documents of at least
50 words, and on a docstring of ten words one repeated bigram is already 20% of the text.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from pipeline.clean.repetition import DUP_NS, TOP_NS

SPACED_SCRIPTS = ("latin", "cyrillic")  # where whitespace tokens are words


@dataclass(frozen=True)
class Rule:
    name: str  # the drop reason
    column: str
    op: Literal["lt", "gt", "outside", "true"]  # drop if value < t, > t, outside [lo, hi], or flag set
    thresholds: tuple[str, ...] = ()  # CleanConfig fields (lo, hi for "outside"); empty: fixed
    scripts: tuple[str, ...] | None = None  # scripts it applies to; None: all
    fixed: float = 0.0  # the threshold when ``thresholds`` is empty
    code: bool = False  # a code rule: not among the default prose rules
    stats: bool = True  # a statistic of words or lines: needs ``cfg.stats_min_words`` words to mean much
    why: str = ""

    def limits(self, cfg) -> tuple[float, ...]:
        return tuple(getattr(cfg, t) for t in self.thresholds) or (self.fixed,)

    def fails(self, values: np.ndarray, cfg) -> np.ndarray:
        lim = self.limits(cfg)
        if self.op == "lt":
            return values < lim[0]
        if self.op == "gt":
            return values > lim[0]
        if self.op == "outside":
            return (values < lim[0]) | (values > lim[1])
        return values.astype(bool)


RULES: tuple[Rule, ...] = (
    Rule("empty", "n_lines", "lt", fixed=1, stats=False, why="no non-whitespace character after normalization"),
    # Gopher quality (Rae et al. 2021, appendix A1)
    Rule("gopher_min_words", "n_words", "lt", ("min_words",), stats=False, why="CJK: characters count as words"),
    Rule("gopher_max_words", "n_words", "gt", ("max_words",), stats=False),
    Rule("gopher_mean_word_len", "mean_word_len", "outside", ("min_mean_word_len", "max_mean_word_len"),
         scripts=SPACED_SCRIPTS, why="word length means nothing without spaces"),
    Rule("gopher_symbol_ratio", "symbol_ratio", "gt", ("max_symbol_ratio",)),
    Rule("gopher_bullet_lines", "bullet_lines_ratio", "gt", ("max_bullet_lines_ratio",)),
    Rule("gopher_ellipsis_lines", "ellipsis_lines_ratio", "gt", ("max_ellipsis_lines_ratio",)),
    Rule("gopher_alpha_words", "alpha_words_ratio", "lt", ("min_alpha_words_ratio",)),
    Rule("gopher_stopwords", "stopword_count", "lt", ("min_stopwords",), scripts=("latin",),
         why="the stop words are English"),
    # Gopher repetition
    Rule("gopher_dup_lines", "dup_line_frac", "gt", ("max_dup_line_frac",)),
    Rule("gopher_dup_line_chars", "dup_line_char_frac", "gt", ("max_dup_line_char_frac",)),
    Rule("gopher_dup_paras", "dup_para_frac", "gt", ("max_dup_para_frac",)),
    Rule("gopher_dup_para_chars", "dup_para_char_frac", "gt", ("max_dup_para_char_frac",)),
    *(Rule(f"gopher_top_{n}gram", f"top_{n}gram_char_frac", "gt", (f"max_top_{n}gram_char_frac",))
      for n in TOP_NS),
    *(Rule(f"gopher_dup_{n}gram", f"dup_{n}gram_char_frac", "gt", (f"max_dup_{n}gram_char_frac",))
      for n in DUP_NS),
    # C4 (Raffel et al. 2020) as document-level ratios, with FineWeb's thresholds where it set them
    Rule("c4_lorem_ipsum", "has_lorem_ipsum", "true", stats=False),
    Rule("c4_javascript_policy", "javascript_policy_lines_ratio", "gt", ("max_javascript_policy_lines_ratio",)),
    Rule("c4_curly_bracket", "has_curly_bracket", "true", stats=False,
         why="off by default: code and docs use braces"),
    Rule("c4_terminal_punct", "terminal_punct_lines_ratio", "lt", ("min_terminal_punct_lines_ratio",)),
    Rule("c4_short_lines", "short_lines_ratio", "gt", ("max_short_lines_ratio",)),
    # Code: only what marks generated or broken files
    Rule("code_max_line_len", "max_line_len", "gt", ("code_max_line_len",), code=True, stats=False,
         why="minified or data blobs"),
    Rule("code_dup_line_chars", "dup_line_char_frac", "gt", ("code_max_dup_line_char_frac",), code=True),
)
RULE_NAMES = tuple(r.name for r in RULES)
PROSE_RULES = tuple(r.name for r in RULES if not r.code)


def rules_for_source(source: str, cfg) -> tuple[str, ...]:
    """The rule names that apply to documents of ``source``, in ``RULES`` order."""
    if source in cfg.rules_by_source:
        chosen = set(cfg.rules_by_source[source])
    elif source in cfg.code_sources:
        chosen = set(cfg.code_rules)
    else:
        chosen = set(PROSE_RULES)
    chosen -= set(cfg.disabled_rules)
    return tuple(n for n in RULE_NAMES if n in chosen)


def apply(columns: dict[str, np.ndarray], sources: np.ndarray, scripts: np.ndarray, cfg) -> np.ndarray:
    """Index into ``RULE_NAMES`` of the first failed rule per document, -1 where it is kept."""
    n = len(sources)
    first = np.full(n, -1, dtype=np.int64)
    n_words = columns["n_words"]
    by_source = {s: set(rules_for_source(s, cfg)) for s in np.unique(sources).tolist()}
    for k, rule in enumerate(RULES):
        users = [s for s, names in by_source.items() if rule.name in names]
        if not users or n == 0:
            continue
        mask = np.isin(sources, users) & (first < 0)
        if rule.scripts is not None:
            mask &= np.isin(scripts, rule.scripts)
        if rule.stats:
            mask &= n_words >= cfg.stats_min_words
        first[mask & rule.fails(columns[rule.column], cfg)] = k
    return first
