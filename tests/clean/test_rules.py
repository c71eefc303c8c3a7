"""Every rule on a hand-made text that fails it (and passes every rule before it): the reason string."""
from __future__ import annotations

import dataclasses

import pytest

from pipeline.clean import CleanConfig
from pipeline.clean.rules import RULE_NAMES, rules_for_source
from pipeline.clean.stage import drop_reasons
from pipeline.configtypes import ConfigError, build

STOP = {"the", "be", "to", "of", "and", "that", "have", "with"}


def reason(text: str, source: str = "docs", **overrides) -> str | None:
    return drop_reasons([text], [source], dataclasses.replace(CleanConfig(), **overrides))[0]


def test_clean_texts_pass_by_default(texts):
    for text in (texts.prose, texts.pydoc, texts.docstring, texts.chinese, texts.prose + "\n\n" + texts.chinese):
        assert reason(text) is None, text[:40]
    assert reason(texts.code, source="stdlib_source") is None


def test_quality_rules(texts):
    lines = texts.prose.split("\n")
    cases = {
        "empty": ["", "  \n\t \n"],
        "gopher_min_words": ["Too short.", "-- ## !!"],
        "gopher_mean_word_len": [" ".join(["abcdefghijklmno"] * 60), " ".join(["a b"] * 40)],
        "gopher_symbol_ratio": [texts.prose + "\n" + " ".join(["#"] * 20), texts.prose + " ..." * 20],
        "gopher_bullet_lines": ["\n".join("- " + line for line in lines)],
        "gopher_ellipsis_lines": ["\n".join(line.rstrip(".") + "..." for line in lines)],
        "gopher_alpha_words": [texts.prose + "\n" + " ".join(str(i) for i in range(40))],
        "gopher_stopwords": ["\n".join(" ".join(w for w in line.split() if w.lower() not in STOP)
                                       for line in lines)],
        "c4_lorem_ipsum": [texts.prose + "\nLorem ipsum dolor sit amet.", "Lorem ipsum dolor sit amet, consectetur."],
        "c4_javascript_policy": [texts.prose + "\nPlease enable JavaScript to view this page.\n"
                                               "Read our privacy policy and terms of use."],
        "c4_terminal_punct": ["\n".join(line.rstrip(".") for line in lines)],
        "c4_short_lines": [texts.prose + "\n" + "\n".join(f"Item {i}" for i in range(12))],
    }
    for expected, examples in cases.items():
        for text in examples:
            assert reason(text) == expected, (expected, text[:60])
    assert reason(texts.prose, max_words=20) == "gopher_max_words"


def test_repetition_rules(texts):
    lines = texts.prose.split("\n")
    assert reason("\n".join(lines + [lines[0]] * 3)) == "gopher_dup_lines"
    long_line = ("Quarterly reports arrive by courier every Tuesday morning, bundled in brown paper, sealed with "
                 "red wax, stamped twice by clerks who never read them, and filed in cabinets nobody opens, "
                 "where they yellow quietly beside invoices from a decade nobody remembers.")
    assert reason("\n".join(lines + [long_line, long_line])) == "gopher_dup_line_chars"
    other = ("A small bakery opened on the corner last winter, and its bread quickly became famous.\n"
             "Every morning a line formed before sunrise, stretching past the shuttered bookshop.\n"
             "The baker refused to explain her recipe, saying only that patience mattered most.")
    assert reason("\n\n".join(["Note one.", "Note two.", "Note one.", "Note one.", texts.prose, other])) \
        == "gopher_dup_paras"
    # The same paragraph twice, its lines unique otherwise: only paragraph rules are left to catch it.
    line_rules = ["gopher_dup_lines", "gopher_dup_line_chars"]
    assert reason(texts.prose + "\n\n" + texts.prose, disabled_rules=line_rules) == "gopher_dup_paras"
    three = "\n\n".join([texts.prose, texts.prose, other])
    assert reason(three, disabled_rules=line_rules, max_dup_para_frac=0.5) == "gopher_dup_para_chars"

    bigrams = "\n".join(f"The red apple and word{i} fell." for i in range(15))
    assert reason(bigrams) == "gopher_top_2gram"
    assert reason(bigrams, disabled_rules=["gopher_top_2gram"]) == "gopher_top_3gram"
    assert reason(bigrams, disabled_rules=["gopher_top_2gram", "gopher_top_3gram"]) == "gopher_top_4gram"

    refrain = "when the cold wind blows across the empty northern hills at night"
    song = "\n".join(f"Verse {i}: {refrain} we sing of thing{i} again." for i in range(8))
    off = ["gopher_top_2gram", "gopher_top_3gram", "gopher_top_4gram"]
    for n in range(5, 11):
        assert reason(song, disabled_rules=off) == f"gopher_dup_{n}gram"
        off.append(f"gopher_dup_{n}gram")
    assert reason(song, disabled_rules=off) is None


def test_curly_bracket_rule_is_off_by_default(texts):
    text = texts.prose + "\nConfig values look like {\"key\": 1}."
    assert reason(text) is None
    assert reason(text, disabled_rules=[]) == "c4_curly_bracket"


def test_first_failed_rule_wins(texts):
    # Short, lorem ipsum and no stop words: min_words comes first.
    assert reason("Lorem ipsum.") == "gopher_min_words"
    assert reason("Lorem ipsum.", disabled_rules=["gopher_min_words"]) == "c4_lorem_ipsum"


def test_statistical_rules_need_enough_words(texts):
    short = "Buy now! Buy now! Buy now! Buy now!"  # 8 words, all repetition
    assert reason(short) is None
    assert reason(short, stats_min_words=0) == "gopher_stopwords"
    # One 3-gram of a 9-word docstring is 23% of it: what a "top n-gram" means only on long texts.
    assert reason(texts.docstring, stats_min_words=0) == "gopher_top_3gram"


def test_cjk_skips_word_length_and_english_stop_words(texts):
    assert reason(texts.chinese, stats_min_words=0) is None
    assert reason(texts.chinese[:30], min_words=50) == "gopher_min_words"  # characters count as words
    # The same prose in Russian: word-length rules apply (spaced script), English stop words do not.
    russian = ("Река медленно текла через долину, неся талую воду с далёких гор к морю. Крестьяне на её "
               "берегах научились читать цвет воды и сажали свои посевы соответственно. Весной течение "
               "становилось сильным и мутным, а в конце лета замедлялось до чистого и спокойного потока. "
               "Дети собирали гладкие камни у мелкого поворота, а старые рыбаки рассказывали истории о "
               "наводнениях, которые изменили целые деревни.")
    assert reason(russian) is None


def test_code_sources_get_code_rules_only(texts):
    code_with_blob = texts.code + "DATA = '" + "x" * 1200 + "'\n"
    assert reason(code_with_blob, source="stdlib_source") == "code_max_line_len"
    generated = texts.code + "\n".join(["    register(handler_for_event_number_generated)"] * 40)
    assert reason(generated, source="stdlib_source") == "code_dup_line_chars"
    assert reason("x = 1", source="stdlib_source") is None  # prose rules (min_words...) do not apply
    assert reason("x = 1", source="docs") == "gopher_min_words"
    assert reason("", source="stdlib_source") == "empty"
    assert reason(texts.code, source="my_code", code_sources=["my_code"]) is None


def test_rules_by_source_and_disabled_rules(texts):
    cfg = CleanConfig(rules_by_source={"notes": ["gopher_min_words"]}, disabled_rules=["c4_lorem_ipsum"])
    assert rules_for_source("notes", cfg) == ("gopher_min_words",)
    assert "c4_lorem_ipsum" not in rules_for_source("docs", cfg)
    assert "c4_curly_bracket" in rules_for_source("docs", cfg)  # the list replaced the default
    assert set(rules_for_source("stdlib_source", cfg)) == set(cfg.code_rules)
    got = drop_reasons(["Lorem ipsum dolor sit amet, consectetur adipiscing.", "tiny"], ["notes", "notes"], cfg)
    assert got == [None, "gopher_min_words"]
    assert rules_for_source("x", CleanConfig(disabled_rules=list(RULE_NAMES))) == ()


def test_config_validation_names_the_key():
    with pytest.raises(ConfigError, match="disabled_rules: unknown rule 'gopher_typo'"):
        build(CleanConfig, {"disabled_rules": ["gopher_typo"]})
    with pytest.raises(ConfigError, match="rules_by_source.web: unknown rule"):
        build(CleanConfig, {"rules_by_source": {"web": ["nope"]}})
    with pytest.raises(ConfigError, match="max_dup_line_frac"):
        build(CleanConfig, {"max_dup_line_frac": 1.5})
    with pytest.raises(ConfigError, match="min_mean_word_len"):
        build(CleanConfig, {"min_mean_word_len": 12})
    assert build(CleanConfig, {"min_words": "20"}).min_words == 20
