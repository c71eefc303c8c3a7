"""How a text is cut into the strings sentencepiece encodes: escapes, and chunks that keep the ids.

Escapes (they change the ids, on purpose):

- sentencepiece reads U+2581 ``▁`` in its input as its own whitespace symbol and decodes it as a space,
  so ``"a▁b"`` would come back as ``"a b"``;
- it matches the text of a user-defined symbol (``<mask>``, ``<extra_id_0>``, ...) anywhere in a
  document, so a page about T5 would inject sentinel ids into the training data.

Each occurrence is emitted as its UTF-8 bytes through the byte-fallback pieces (``<0xE2><0x96><0x81>``
for ``▁``): decoding gives the exact characters back, and special ids never come from text.

Chunks (they never change the ids): sentencepiece's BPE gets slower per character as its input grows
(0.36 us/char at 1k chars, 1.1 us/char at 500k here; bench/tokenize.py), so a text longer than
``CHUNK_CHARS`` is encoded as chunks cut where no vocabulary piece can cross:

- after a newline: the trainer reads lines, so no learned piece holds ``\\n``;
- before the first space of a run: pieces hold ``▁`` only as a leading run (``split_by_whitespace``).

Unigram's Viterbi and BPE's greedy merges both decompose at such a cut, so the chunks' ids concatenate
to the whole text's ids. ``Tokenizer`` checks both vocabulary properties (and a probe) when it loads a
model, and encodes whole texts with a model that lacks them.
"""
from __future__ import annotations

import re
from typing import Iterable

META = "\u2581"  # sentencepiece's whitespace symbol
CHUNK_CHARS = 4096
_NEXT_CUT = re.compile(r"\n|(?<! ) ")


def escape_pattern(symbols: Iterable[str]) -> re.Pattern[str]:
    """What is escaped: ``▁`` and the user-defined symbols (longest first, so no prefix wins)."""
    alternatives = [re.escape(s) for s in sorted(set(symbols), key=lambda s: (-len(s), s)) if s]
    return re.compile("|".join([re.escape(META), *alternatives]))


def probe_pattern(symbols: Iterable[str]) -> re.Pattern[str] | None:
    """The symbols grouped by first character ("<(?:mask>|sep>|...)"): same matches, faster search."""
    groups: dict[str, list[str]] = {}
    for s in sorted(set(symbols), key=lambda s: (-len(s), s)):
        if s:
            groups.setdefault(s[0], []).append(re.escape(s[1:]))
    if not groups:
        return None
    return re.compile("|".join(f"{re.escape(c)}(?:{'|'.join(rest)})" for c, rest in sorted(groups.items())))


def cut_points(text: str, size: int) -> list[int]:
    """Positions where ``text`` is cut so that chunks are at most ``size`` chars where a cut allows."""
    cuts, start, n = [], 0, len(text)
    while n - start > size:
        cut = _last_cut(text, start, start + size)
        if cut is None:  # no newline or space in the window: take the first cut after it
            m = _NEXT_CUT.search(text, start + size)
            if m is None:
                break
            cut = m.end() if m.group() == "\n" else m.start()
        cuts.append(cut)
        start = cut
    return cuts


def _last_cut(text: str, start: int, end: int) -> int | None:
    """The last cut in ``(start, end]``: just after a newline, or before the first space of a run."""
    best = None
    nl = text.rfind("\n", start, end)
    if nl >= start:
        best = nl + 1
    sp = text.rfind(" ", start + 1, end + 1)
    while sp > start and text[sp - 1] == " ":
        sp -= 1
    if sp > start and (best is None or sp > best):
        best = sp
    return best


def chunks(text: str, size: int | None) -> list[str]:
    if size is None or len(text) <= size:
        return [text]
    bounds = [0, *cut_points(text, size), len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:])]


def parts(text: str, escape: re.Pattern[str] | None, size: int | None) -> list[str | bytes]:
    """The text as strings to encode and bytes to emit as byte pieces, in order."""
    out: list[str | bytes] = []
    pos = 0
    if escape is not None:
        for m in escape.finditer(text):
            if m.start() > pos:
                out.extend(chunks(text[pos:m.start()], size))
            out.append(m.group().encode("utf-8"))
            pos = m.end()
    if pos < len(text):
        out.extend(chunks(text[pos:], size))
    return out
