"""The default tasks, derived from the default corpus (the standard library's docstrings and pydoc
topics), with labels that come from the data itself, so a default run needs no download.

- ``stdlib_area`` (classification): which area of the standard library a docstring comes from. The
  label is the module's top-level package mapped through ``TaskConfig.areas`` (default: asyncio,
  email, importlib, multiprocessing, net = http/urllib/wsgiref/xmlrpc, tkinter, unittest, xml: the
  packages with many modules, so whole modules can be held out in each). One example per docstring
  (module, class, public function or method); an exact repeat of an earlier docstring text is dropped
  (``duplicate_text``), so a boilerplate docstring cannot sit in train and test at once.
- ``stdlib_names`` (tagging, BIO): the code names the documentation itself marks. Docstrings mark
  code with backticks (````like_this```` or ```like_this```, optionally after a role such as
  ``:func:``); pydoc topics (Sphinx text output) put it in double quotes. Words are the whitespace
  tokens of a paragraph with the marks removed; a word holding marked characters is B-CODE (first word
  of a mark) or I-CODE (a later word of the same mark), any other word O. Paragraphs with at least one
  mark become examples, cut into windows of at most ``MAX_WORDS`` words (never inside a mark); a
  paragraph whose marks do not pair up is dropped (``unbalanced_marks``).

Splits are BY UNIT (a module, or a pydoc topic): every example of a unit lands in the same split.
Units are stratified by area (top-level package; all topics form one group) and weighted by size
(docstrings of a module, paragraphs of a topic): in each group, units in the order of a keyed hash of
``split_seed`` and the unit go to test until test holds ``test_fraction`` of the group's weight
(skipping a unit that would overshoot by half: one huge module must not be a whole split), then to
validation likewise (at least one unit each when the group has 3+ units); the rest is train. A group of
1-2 units assigns each unit by its hash alone. ``held_out_units`` names the test
units so that decontamination can remove their documents (ingest's ``module/<m>`` and ``topic/<t>``
local ids; doc meta ``module`` / ``topic``) from the pretraining corpus.
"""
from __future__ import annotations

import ast
import hashlib
import json
import re
from collections import defaultdict
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from pipeline.ingest import stdlib
from pipeline.tasks.config import TaskConfig
from pipeline.store import atomic_write_text
from pipeline.tasks.readers import Drop, Record

MAX_WORDS = 24  # a window's words: with the default preset's tokenizer, 98.7% of the windows fit finetune.max_len
# (64 tokens); at 48, 24% did not, and the words past the cut were scored as untagged
CACHE_FORMAT = "1"  # bump when the docstring extraction changes
# An optional role (":func:", ":py:meth:") then ``double`` or `single` backticks (`link`_ too), or the
# older `quote' style some modules (cmd, getopt...) still use.
DOC_MARK = re.compile(r"(?:(?<!\w):[\w.+-]+(?::[\w.+-]+)*:)?"
                      r"(?:``(?P<dbl>[^`]+?)``|`(?P<old>[^`'\n]+)'|`(?P<sgl>[^`\n]+?)`_{0,2})")
TOPIC_MARK = re.compile(r'"(?P<q>[^"]*)"')
_PARAGRAPH = re.compile(r"\n[ \t]*\n")


def _unit_hash(seed: int, unit: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}:{unit}".encode(), digest_size=8).digest(), "big")


_PARSED: dict[str, tuple[tuple[str, str], ...]] = {}  # module -> its docstrings, for this process


def _parse(module: str, path: str) -> tuple[tuple[str, str], ...]:
    if module not in _PARSED:
        try:
            tree = ast.parse(open(path, encoding="utf-8", errors="replace").read())
            _PARSED[module] = tuple((sig.split("(")[0] or "<module>", doc) for _, sig, doc in stdlib.docstrings(tree))
        except SyntaxError:
            _PARSED[module] = ()
    return _PARSED[module]


def use_cache(cache_dir: Path) -> Path:
    """Parsing every stdlib module takes seconds; keep the docstrings in ``cache_dir`` as JSON, keyed by
    the Python that owns the stdlib (``stdlib.fingerprint``), and load them from there next time."""
    key = hashlib.blake2b(f"{stdlib.fingerprint()}|{CACHE_FORMAT}".encode(), digest_size=8).hexdigest()
    path = Path(cache_dir) / f"stdlib-docstrings-{key}.json"
    if path.exists():
        data = json.loads(path.read_text())
        _PARSED.update({m: tuple(tuple(d) for d in docs) for m, docs in data.items()})
        return path
    docs = {m: _parse(m, p) for m, p in _module_files()}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(docs))
    return path


@lru_cache(maxsize=1)
def _module_files() -> tuple[tuple[str, str], ...]:
    return tuple((m, str(p)) for m, p in stdlib.module_files())


def module_docstrings(areas: frozenset[str] | None = None) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
    """(module, ((where, docstring), ...)) for the stdlib modules the ingest corpus holds (only those
    whose top-level package is in ``areas`` when given: parsing the whole stdlib takes seconds)."""
    out = []
    for module, path in _module_files():
        if areas is None or stdlib.area(module) in areas:
            docs = _parse(module, path)
            if docs:
                out.append((module, docs))
    return out


@lru_cache(maxsize=1)
def topic_texts() -> tuple[tuple[str, str], ...]:
    from pydoc_data.topics import topics
    return tuple((name, topics[name]) for name in sorted(topics))


def unit_table(areas: frozenset[str] | None = None) -> dict[str, tuple[str, int]]:
    """unit key -> (its stratification group, its weight): a module's group is its area and its weight
    its docstrings; a topic's group is "topic" and its weight its paragraphs. With ``areas``, only the
    modules of those areas (their splits do not depend on other groups)."""
    units = {f"module/{m}": (stdlib.area(m), len(docs)) for m, docs in module_docstrings(areas)}
    if areas is None:
        units.update({f"topic/{t}": ("topic", len(_PARAGRAPH.split(text))) for t, text in topic_texts()})
    return units


def _take(units: list[str], weight: dict[str, int], target: float) -> list[str]:
    """Units in order until their weight reaches ``target``, skipping any that would overshoot it by
    half (a package's one huge module must not become the whole test split)."""
    chosen, total = [], 0
    for u in units:
        if total >= target:
            break
        if total + weight[u] <= 1.5 * target:
            chosen.append(u)
            total += weight[u]
    return chosen


def unit_splits(seed: int, val_fraction: float, test_fraction: float,
                areas: frozenset[str] | None = None) -> dict[str, str]:
    """unit key -> "train" | "validation" | "test" (stratified by area, see the module docstring)."""
    table = unit_table(areas)
    weight = {u: w for u, (_, w) in table.items()}
    groups: dict[str, list[str]] = defaultdict(list)
    for unit, (group, _) in table.items():
        groups[group].append(unit)
    out: dict[str, str] = {}
    for units in groups.values():
        units.sort(key=lambda u: (_unit_hash(seed, u), u))
        if len(units) < 3:
            for u in units:
                x = _unit_hash(seed, u) / 2.0**64
                out[u] = "test" if x < test_fraction else "validation" if x < test_fraction + val_fraction else "train"
            continue
        total = sum(weight[u] for u in units)
        for split, frac in (("test", test_fraction), ("validation", val_fraction)):
            free = [u for u in units if u not in out]
            chosen = _take(free, weight, frac * total)
            if not chosen and frac > 0:  # every unit is too big: the smallest one
                chosen = [min(free, key=lambda u: (weight[u], u))]
            out.update({u: split for u in chosen})
        out.update({u: "train" for u in units if u not in out})
    return out


def area_label(module: str, areas: dict[str, list[str]]) -> str | None:
    top = stdlib.area(module)
    for label, packages in areas.items():
        if top in packages:
            return label
    return None


def area_records(cfg: TaskConfig) -> dict[str, list[Record | Drop]]:
    packages = frozenset(p for ps in cfg.areas.values() for p in ps)
    splits = unit_splits(cfg.split_seed, cfg.val_fraction, cfg.test_fraction, packages)
    out: dict[str, list[Record | Drop]] = {"train": [], "validation": [], "test": []}
    seen: dict[str, str] = {}
    for module, docs in module_docstrings(packages):
        label = area_label(module, cfg.areas)
        if label is None:
            continue
        unit = f"module/{module}"
        for where, doc in docs:
            origin = f"{unit}:{where}"
            text = doc.strip()
            if text in seen:
                out[splits[unit]].append(Drop("duplicate_text", origin, f"same docstring as {seen[text]}"))
                continue
            seen[text] = origin
            out[splits[unit]].append(Record(origin, text=text, label=label, unit=unit))
    return out


def marked_words(text: str, mark: re.Pattern[str], mark_char: str) -> tuple[list[str], list[str]] | None:
    """(words, BIO tags) of one paragraph with its marks removed; None if marks do not pair up."""
    chars: list[str] = []
    span_of: list[int] = []  # span id of each kept character, -1 outside marks
    pos, n_spans = 0, 0
    for m in mark.finditer(text):
        chars.extend(text[pos:m.start()])
        span_of.extend([-1] * (m.start() - pos))
        inner = next(g for g in m.groups() if g is not None)
        chars.extend(inner)
        span_of.extend([n_spans] * len(inner))
        n_spans += 1
        pos = m.end()
    chars.extend(text[pos:])
    span_of.extend([-1] * (len(text) - pos))
    clean = "".join(chars)
    if mark_char in clean:
        return None
    words, tags, prev_span = [], [], -1
    for w in re.finditer(r"\S+", clean):
        ids = [s for s in span_of[w.start():w.end()] if s >= 0]
        words.append(w.group())
        if not ids:
            tags.append("O")
            prev_span = -1
            continue
        tags.append("I-CODE" if ids[0] == prev_span else "B-CODE")
        prev_span = ids[-1]
    return words, tags


def windows(words: list[str], tags: list[str], size: int = MAX_WORDS) -> Iterator[tuple[list[str], list[str]]]:
    """Cut into pieces of at most ``size`` words, each starting at a word that is not I-CODE."""
    start = 0
    while start < len(words):
        end = min(len(words), start + size)
        while end < len(words) and tags[end] == "I-CODE" and end > start + 1:
            end -= 1
        yield words[start:end], tags[start:end]
        start = end


def _paragraph_records(unit: str, where: str, text: str, mark: re.Pattern[str], mark_char: str
                       ) -> Iterator[Record | Drop]:
    for k, para in enumerate(_PARAGRAPH.split(text)):
        if mark_char not in para:
            continue
        origin = f"{unit}:{where}:p{k}"
        parsed = marked_words(para, mark, mark_char)
        if parsed is None:
            yield Drop("unbalanced_marks", origin, para[:120])
            continue
        for j, (words, tags) in enumerate(windows(*parsed)):
            if any(t != "O" for t in tags):
                yield Record(f"{origin}:w{j}", tokens=words, tags=tags, unit=unit)


def names_records(cfg: TaskConfig) -> dict[str, list[Record | Drop]]:
    """The tagging task's windows, split by unit (module or pydoc topic). A window whose words another one
    already has (topics and some modules repeat whole paragraphs) is dropped as ``duplicate_text``, as the area
    task drops a repeated docstring: no example is in two splits, nor twice in one."""
    splits = unit_splits(cfg.split_seed, cfg.val_fraction, cfg.test_fraction)
    out: dict[str, list[Record | Drop]] = {"train": [], "validation": [], "test": []}
    seen: dict[tuple[str, ...], str] = {}
    units = [(f"module/{module}", where, doc, DOC_MARK, "`") for module, docs in module_docstrings()
             for where, doc in docs]
    units += [(f"topic/{name}", "topic", text, TOPIC_MARK, '"') for name, text in topic_texts()]
    for unit, where, text, mark, mark_char in units:
        for item in _paragraph_records(unit, where, text, mark, mark_char):
            if isinstance(item, Record):
                words = tuple(item.tokens or ())
                if words in seen:
                    item = Drop("duplicate_text", item.origin, f"the same words as {seen[words]}")
                else:
                    seen[words] = item.origin
            out[splits[unit]].append(item)
    return out


def records(cfg: TaskConfig) -> dict[str, list[Record | Drop]]:
    return area_records(cfg) if cfg.source == "stdlib_area" else names_records(cfg)


__all__ = ["area_records", "names_records", "records", "unit_splits", "unit_table", "marked_words", "windows",
           "module_docstrings", "topic_texts", "use_cache", "MAX_WORDS"]
