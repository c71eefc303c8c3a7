"""Throttled progress lines: at most one per interval, a closing line only when it says something new."""
from __future__ import annotations

import io

from pipeline.progress import Progress


def lines(p: Progress) -> list[str]:
    return [x for x in p.stream.getvalue().splitlines() if x]


def fake_clock(monkeypatch, times: list[float]) -> None:
    """This module's clock reads ``times`` in turn (the time module itself stays as it is)."""
    ticks = iter(times)
    clock = type("Clock", (), {"perf_counter": staticmethod(lambda: next(ticks))})
    monkeypatch.setattr("pipeline.progress.time", clock)


def test_lines_are_throttled_and_the_close_does_not_repeat_the_last(monkeypatch):
    fake_clock(monkeypatch, [0.0, 1.0, 2.5, 3.0, 5.0, 5.0])  # start; updates at 1.0, 2.5, 3.0, 5.0; close
    p = Progress("stage", total=4, unit="shards", every=2.0, stream=io.StringIO())
    for _ in range(4):
        p.update(1)
    p.close()
    got = lines(p)  # at 2.5 s (2/4) and at 5.0 s (4/4); the close would repeat 4/4
    assert len(got) == 2 and "2/4 shards  50.0%" in got[0] and "4/4 shards 100.0%" in got[1]
    assert "eta 0m02s" in got[0] and "elapsed 0m05s" in got[1]


def test_a_resumed_count_is_done_but_not_in_the_rate_and_short_work_prints_nothing(monkeypatch):
    fake_clock(monkeypatch, [0.0, 4.0, 4.0, 10.0, 10.0, 10.0])
    p = Progress("tokenize encode", total=100, unit="docs", every=2.0, stream=io.StringIO(), start=60)
    p.update(20)  # 20 new documents in 4 s: 5 docs/s, 80 of 100 done, 4 s left
    p.close()  # nothing new since that line
    (line,) = lines(p)
    assert "80/100 docs  80.0%" in line and "eta 0m04s" in line and "5.00 docs/s" in line
    quick = Progress("x", total=3, every=2.0, stream=io.StringIO())
    quick.update(3)
    quick.close()
    assert lines(quick) == []
