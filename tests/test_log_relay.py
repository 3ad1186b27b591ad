"""`up` relays Envoy's stderr with repeats collapsed: bounded log growth."""

from __future__ import annotations

import os

from clauditor.supervisor import LogRelay

LINE = (
    "[2026-12-02 00:10:58.{ms:03d}][{tid}][warning][ext_proc] [source/extensions/filters/http/"
    'ext_proc/ext_proc.cc:2068] [Tags: "ConnectionId":"{n}"] Received gRPC error on stream: 14'
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_repeats_pass_a_few_then_one_summary_per_interval() -> None:
    out: list[str] = []
    clock = Clock()
    relay = LogRelay("envoy", out.append, interval=10, burst=3, max_lines=30, clock=clock)
    for n in range(1000):
        clock.now = n * 0.01  # 1000 warnings in 10 s
        relay.line(LINE.format(ms=n % 1000, tid=8600 + n % 3, n=n))
    relay.line("[2026-12-02 00:11:00.000][8606][info][main] something else")
    assert len(out) == 4  # 3 of the repeats, the other line
    clock.now = 10.5
    relay.tick()
    assert len(out) == 5 and "… 997 similar line(s) suppressed in 10 s" in out[-1]
    assert relay.suppressed_total == 997
    clock.now = 11
    relay.line(LINE.format(ms=1, tid=1, n=1))  # a new interval: passes again
    assert len(out) == 6 and "suppressed" not in out[-1]


def test_distinct_lines_are_capped_too() -> None:
    out: list[str] = []
    relay = LogRelay("envoy", out.append, interval=10, burst=3, max_lines=5, clock=Clock())
    for n in range(50):
        relay.line(f"[x][1][warning][main] distinct message {'abcdefghij'[n % 10]}{n // 10}")
    relay.flush()
    assert len(out) == 6 and "45 similar line(s) suppressed" in out[-1]


def test_pump_reads_a_pipe_and_strips_escapes() -> None:
    out: list[str] = []
    relay = LogRelay("envoy", out.append, clock=Clock())
    r, w = os.pipe()
    os.write(w, b"one\n\x1b]0;pwned\x07two\npartial")
    os.close(w)
    relay.pump(os.fdopen(r, "rb"))
    assert out == ["one", "two", "partial"]
