"""Where a turn's time went: six parts that add up to its wall time.

- `waiting_for_model_ms`: a main-thread request sent → its first token (the whole request
  when no token came one by one), and Claude Code preparing a request that follows no tool;
- `generating_ms`: first token → end of the response;
- `tools_ms`: a response asking for tools ended → the request carrying their results;
- `waiting_for_you_ms`: Claude Code waiting on its user inside the turn (a permission
  prompt: its session registry says `waiting`);
- `retries_ms`: a failed attempt, and the backoff before the next request;
- `subagents_ms`: foreground Agent runs (the call → the end of the run's last request;
  the rest until the result reaches the model is the tools' time, as Claude Code waits for
  every tool of the response); background ones outlive the turn and are not part of it.

Each instant of the turn is given to exactly one part, so parallel tools or subagents
count once (an interval union) and the parts sum to the turn's duration. Where parts
overlap, the most specific wins: you > retries > generating > waiting for the model >
subagents > tools. An instant nothing covers (between two requests) goes to what the
request before it ended in: tools if it asked for tools, retries if it failed, else the
model. Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

TimePart = Literal[
    "waiting_for_model_ms",
    "generating_ms",
    "tools_ms",
    "waiting_for_you_ms",
    "retries_ms",
    "subagents_ms",
]
TIME_PARTS: tuple[TimePart, ...] = (
    "waiting_for_model_ms",
    "generating_ms",
    "tools_ms",
    "waiting_for_you_ms",
    "retries_ms",
    "subagents_ms",
)
# Most specific first: where two parts cover one instant, the earlier one takes it.
_PRIORITY: tuple[TimePart, ...] = (
    "waiting_for_you_ms",
    "retries_ms",
    "generating_ms",
    "waiting_for_model_ms",
    "subagents_ms",
    "tools_ms",
)
_RANK = {part: i for i, part in enumerate(_PRIORITY)}


@dataclass(frozen=True, slots=True)
class Segment:
    """One main-thread request of the turn, as the wire showed it."""

    start: float
    end: float
    first_token: float | None = None
    failed: bool = False
    asked_tools: bool = False

    @property
    def after(self) -> TimePart:
        """What the time after this response, until the next request, is spent on."""
        if self.failed:
            return "retries_ms"
        return "tools_ms" if self.asked_tools else "waiting_for_model_ms"


Interval = tuple[float, float]


def _intervals(
    segments: Sequence[Segment], subagents: Iterable[Interval], waits: Iterable[Interval]
) -> list[tuple[float, float, TimePart]]:
    out: list[tuple[float, float, TimePart]] = []
    for s in segments:
        if s.failed:
            out.append((s.start, s.end, "retries_ms"))
        elif s.first_token is None:
            out.append((s.start, s.end, "waiting_for_model_ms"))
        else:
            token = min(max(s.first_token, s.start), s.end)
            out.append((s.start, token, "waiting_for_model_ms"))
            out.append((token, s.end, "generating_ms"))
    out += [(lo, hi, "subagents_ms") for lo, hi in subagents]
    out += [(lo, hi, "waiting_for_you_ms") for lo, hi in waits]
    return out


def breakdown(
    start: float,
    end: float,
    segments: Sequence[Segment],
    subagents: Iterable[Interval] = (),
    waits: Iterable[Interval] = (),
) -> dict[TimePart, float]:
    """The turn [start, end] split into TIME_PARTS, in milliseconds (3 decimals), summing
    to round((end - start) * 1000, 3)."""
    seconds: dict[TimePart, float] = dict.fromkeys(TIME_PARTS, 0.0)
    if end <= start:
        return dict.fromkeys(TIME_PARTS, 0.0)
    # A sweep over the boundaries: +1/-1 per part, and the last response end seen.
    events: list[tuple[float, int, TimePart | None, TimePart | None]] = []
    for lo, hi, part in _intervals(segments, subagents, waits):
        lo, hi = max(lo, start), min(hi, end)
        if hi > lo:
            events.append((lo, 1, part, None))
            events.append((hi, -1, part, None))
    for s in segments:
        if start <= s.end <= end:
            events.append((s.end, 0, None, s.after))
    events.sort(key=lambda e: (e[0], e[1]))
    active: dict[TimePart, int] = dict.fromkeys(TIME_PARTS, 0)
    fallback: TimePart = "waiting_for_model_ms"  # Claude Code preparing the first request
    at = start
    for ts, delta, counted, after in events:
        if ts > at:
            covering = [p for p in _PRIORITY if active[p] > 0]
            seconds[covering[0] if covering else fallback] += ts - at
            at = ts
        if counted is not None:
            active[counted] += delta
        if after is not None:
            fallback = after
    if end > at:
        covering = [p for p in _PRIORITY if active[p] > 0]
        seconds[covering[0] if covering else fallback] += end - at
    return _rounded(seconds, round((end - start) * 1000.0, 3))


def _rounded(seconds: dict[TimePart, float], total_ms: float) -> dict[TimePart, float]:
    """Milliseconds to 3 decimals, the rounding remainder given to the largest part, so
    the parts add up to the turn's duration_ms exactly as printed."""
    out = {p: round(seconds[p] * 1000.0, 3) for p in TIME_PARTS}
    largest = max(TIME_PARTS, key=lambda p: (out[p], -_RANK[p]))
    out[largest] = round(out[largest] + total_ms - sum(out.values()), 3)
    return out


def shares(time: dict[str, float | None]) -> dict[str, float]:
    """Each part's share of their sum (0 when there is no time at all)."""
    total = sum(v or 0.0 for v in time.values())
    return {k: (0.0 if total <= 0 else (v or 0.0) / total) for k, v in time.items()}
