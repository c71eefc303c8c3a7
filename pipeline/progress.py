"""Throttled progress lines on stderr for anything that takes more than a few seconds."""
from __future__ import annotations

import sys
import time
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


def _fmt_secs(s: float) -> str:
    s = int(max(0, s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class Progress:
    """``Progress("clean", total=n, unit="docs")``; call ``update(k)``; prints at most every ``every`` s."""

    def __init__(self, label: str, total: int | None = None, unit: str = "items", every: float = 2.0,
                 stream=None, enabled: bool = True, start: int = 0):
        self.label, self.total, self.unit, self.every = label, total, unit, every
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.done = self.start = start  # ``start``: already done before (a resumed run); not in the rate
        self.t0 = self.last = time.perf_counter()
        self.extra = ""
        self.shown: int | None = None  # ``done`` at the last printed line

    def update(self, n: int = 1, extra: str = "") -> None:
        self.done += n
        if extra:
            self.extra = extra
        now = time.perf_counter()
        if self.enabled and now - self.last >= self.every:
            self.last = now
            self._print(now)

    def _print(self, now: float, final: bool = False) -> None:
        el = now - self.t0
        rate = (self.done - self.start) / el if el > 0 else 0.0
        parts = [f"[{self.label}]"]
        if self.total:
            pct = 100.0 * self.done / self.total
            parts.append(f"{self.done:,}/{self.total:,} {self.unit} {pct:5.1f}%")
            if not final and rate > 0:
                parts.append(f"eta {_fmt_secs((self.total - self.done) / rate)}")
        else:
            parts.append(f"{self.done:,} {self.unit}")
        parts.append(f"{rate:,.0f} {self.unit}/s" if rate >= 10 else f"{rate:.2f} {self.unit}/s")
        parts.append(f"elapsed {_fmt_secs(el)}")
        if self.extra:
            parts.append(self.extra)
        print("  ".join(parts), file=self.stream, flush=True)
        self.shown = self.done

    def close(self) -> None:
        # A closing line only if the work was long enough to have shown progress at all, and not one that
        # repeats the last line's count (a run's last update often prints 100% already).
        now = time.perf_counter()
        if self.enabled and now - self.t0 >= self.every and self.shown != self.done:
            self._print(now, final=True)


def track(items: Iterable[T], label: str, total: int | None = None, unit: str = "items") -> Iterator[T]:
    p = Progress(label, total=total, unit=unit)
    for item in items:
        yield item
        p.update(1)
    p.close()
