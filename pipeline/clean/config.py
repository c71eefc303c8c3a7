"""CleanConfig: normalization switches, rule thresholds, and which rules apply to which source."""
from __future__ import annotations

from dataclasses import dataclass, field, fields

from pipeline.clean.normalize import NormalizeOptions
from pipeline.clean.rules import RULE_NAMES
from pipeline.configtypes import ConfigError, bounded

_FRACTION = dict(ge=0.0, le=1.0)


@dataclass(frozen=True)
class CleanConfig:
    """The clean stage: normalize every document, compute its quality attributes, apply the rules.

    Normalization fields (``unify_newlines`` … ``collapse_blank_lines``) change the text and hence the
    attributes: they key the attribute cache. Every other field only changes which documents are
    dropped, so changing one reuses the cached attributes.

    Rules (names are the drop reasons; see ``pipeline/clean/rules.py`` for the order and columns):
    ``empty``, ``gopher_min_words``, ``gopher_max_words``, ``gopher_mean_word_len``,
    ``gopher_symbol_ratio``, ``gopher_bullet_lines``, ``gopher_ellipsis_lines``, ``gopher_alpha_words``,
    ``gopher_stopwords``, ``gopher_dup_lines``, ``gopher_dup_line_chars``, ``gopher_dup_paras``,
    ``gopher_dup_para_chars``, ``gopher_top_{2,3,4}gram``, ``gopher_dup_{5..10}gram``,
    ``c4_lorem_ipsum``, ``c4_javascript_policy``, ``c4_curly_bracket``, ``c4_terminal_punct``,
    ``c4_short_lines``, ``code_max_line_len``, ``code_dup_line_chars``.

    Which rules a document gets depends on its ``source``:
    1. a source listed in ``rules_by_source`` gets exactly the rules listed there;
    2. else a source in ``code_sources`` gets ``code_rules`` (source code is not prose: no word length,
       stop word, punctuation or line-length-of-prose rules, only size and generated-file rules);
    3. else every rule except the ``code_*`` ones (the "prose" rules).
    A rule in ``disabled_rules`` applies to no document at all. Two more conditions are fixed:
    word-length rules apply to Latin and Cyrillic documents only (other scripts, spaced or not, are
    one class in ``pipeline.clean.script``) and the English stop-word rule to Latin ones; the
    statistical rules (every ratio and repetition rule) skip documents shorter than ``stats_min_words``
    words (CJK: characters), the length Gopher calibrated them on: one repeated bigram is 20% of a
    ten-word docstring.

    Thresholds are Gopher's (Rae et al. 2021) and C4/FineWeb's, adapted where the default corpus
    (Python documentation and source) needs it: ``min_words`` 5 instead of 50, so that a one-line
    docstring passes; ``min_terminal_punct_lines_ratio`` 0.05 instead of FineWeb's 0.12, because
    hard-wrapped docstrings end a line with punctuation only where a sentence ends; C4's ``{`` rule
    off. A web-text preset would set ``min_words: 50``, ``stats_min_words: 0``,
    ``min_terminal_punct_lines_ratio: 0.12``. ``c4_short_lines`` counts C4's short lines (fewer than 3
    words) against FineWeb's 0.67, not FineWeb's lines of at most 30 characters: on the default corpus
    that definition, over every line as FineWeb counts them, would drop 141 of its 562 documents (code
    listings and headings) against 9.
    """
    # --- normalization (cached with the attributes) ---
    unify_newlines: bool = True
    remove_control_chars: bool = True  # Unicode Cc except \t and \n
    nfc: bool = True
    strip_trailing_whitespace: bool = True
    collapse_blank_lines: bool = True  # runs of 3+ newlines -> one blank line; none at the ends
    mask_emails: bool = True
    mask_ips: bool = True
    mask_public_ips_only: bool = True  # keep private/loopback/documentation addresses (examples)
    email_placeholder: str = "<EMAIL>"
    ip_placeholder: str = "<IP>"
    # --- Gopher quality ---
    min_words: int = bounded(5, ge=0, help="fewer non-symbol words: dropped (CJK: characters)")
    stats_min_words: int = bounded(50, ge=0, help="ratio and repetition rules judge only documents this long")
    max_words: int = bounded(100_000, ge=1)
    min_mean_word_len: float = bounded(3.0, ge=0)
    max_mean_word_len: float = bounded(10.0, ge=0)
    max_symbol_ratio: float = bounded(0.1, ge=0)
    max_bullet_lines_ratio: float = bounded(0.9, **_FRACTION)
    max_ellipsis_lines_ratio: float = bounded(0.3, **_FRACTION)
    min_alpha_words_ratio: float = bounded(0.8, **_FRACTION)
    min_stopwords: int = bounded(2, ge=0, le=8)
    # --- Gopher repetition ---
    max_dup_line_frac: float = bounded(0.3, **_FRACTION)
    max_dup_line_char_frac: float = bounded(0.2, **_FRACTION)
    max_dup_para_frac: float = bounded(0.3, **_FRACTION)
    max_dup_para_char_frac: float = bounded(0.2, **_FRACTION)
    max_top_2gram_char_frac: float = bounded(0.20, **_FRACTION)
    max_top_3gram_char_frac: float = bounded(0.18, **_FRACTION)
    max_top_4gram_char_frac: float = bounded(0.16, **_FRACTION)
    max_dup_5gram_char_frac: float = bounded(0.15, **_FRACTION)
    max_dup_6gram_char_frac: float = bounded(0.14, **_FRACTION)
    max_dup_7gram_char_frac: float = bounded(0.13, **_FRACTION)
    max_dup_8gram_char_frac: float = bounded(0.12, **_FRACTION)
    max_dup_9gram_char_frac: float = bounded(0.11, **_FRACTION)
    max_dup_10gram_char_frac: float = bounded(0.10, **_FRACTION)
    # --- C4 / FineWeb line rules ---
    max_javascript_policy_lines_ratio: float = bounded(0.2, **_FRACTION)
    min_terminal_punct_lines_ratio: float = bounded(0.05, **_FRACTION)
    max_short_lines_ratio: float = bounded(0.67, **_FRACTION)
    # --- code rules ---
    code_max_line_len: int = bounded(1000, ge=1)
    code_max_dup_line_char_frac: float = bounded(0.5, **_FRACTION)
    # --- which rules apply where ---
    disabled_rules: list[str] = bounded(["c4_curly_bracket"])
    code_sources: list[str] = bounded(["stdlib_source"])
    code_rules: list[str] = bounded(["empty", "gopher_max_words", "code_max_line_len", "code_dup_line_chars"])
    rules_by_source: dict[str, list[str]] = field(default_factory=dict)
    # --- reports ---
    samples_per_reason: int = bounded(5, ge=0, help="dropped documents kept per reason in dropped_samples.json")
    sample_chars: int = bounded(400, ge=0, help="each sample's text is cut to this many characters")
    plot: bool = True  # reports/attributes.png: attribute histograms with thresholds

    def __post_init__(self) -> None:
        lists = {"clean.disabled_rules": self.disabled_rules, "clean.code_rules": self.code_rules,
                 **{f"clean.rules_by_source.{s}": v for s, v in self.rules_by_source.items()}}
        for key, names in lists.items():
            unknown = [n for n in names if n not in RULE_NAMES]
            if unknown:
                raise ConfigError(f"{key}: unknown rule {unknown[0]!r}; allowed: {', '.join(RULE_NAMES)}")
        if self.min_mean_word_len > self.max_mean_word_len:
            raise ConfigError(f"clean.min_mean_word_len: got {self.min_mean_word_len}, must be <= "
                              f"max_mean_word_len ({self.max_mean_word_len})")

    def normalize_options(self) -> NormalizeOptions:
        return NormalizeOptions(**{f.name: getattr(self, f.name) for f in fields(NormalizeOptions)})
