"""Injected time: every timestamp in clauditor comes from a Clock, never from time.time()."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any, Protocol, overload


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch; never goes backwards within one process."""
        ...


class SystemClock:
    """Wall time anchored once, then advanced by the monotonic clock.

    Exchange timestamps feed durations and span start/end times, so they must be
    monotonic (an NTP step must not produce negative durations) and still be
    absolute (spans and rows need epoch times).
    """

    def __init__(self) -> None:
        self._wall0 = time.time()
        self._mono0 = time.monotonic()

    def now(self) -> float:
        return self._wall0 + (time.monotonic() - self._mono0)


class ManualClock:
    """A clock tests move by hand."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        self._now += seconds
        return self._now

    def set(self, value: float) -> None:
        self._now = value


@overload
def iso(ts: float) -> str: ...
@overload
def iso(ts: None) -> None: ...
@overload
def iso(ts: float | None) -> str | None: ...
def iso(ts: float | None) -> str | None:
    """ISO 8601 UTC with milliseconds, the one timestamp format of the API and the store."""
    if ts is None:
        return None
    return (
        datetime.fromtimestamp(ts, tz=timezone.utc)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def parse_iso(text: Any) -> float | None:
    """An ISO 8601 timestamp (``Z`` or an offset; naive means UTC) → epoch seconds.

    The inverse of ``iso``, for the store's rows, /watch's events and HTTP headers:
    None when absent, not a string or malformed, so a bad field never breaks a reader.
    """
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()
