"""The local weekly token count, an optional budget, its reset and projected exhaustion.

- Week: Monday 00:00 UTC to the next Monday 00:00 UTC (the reset). Anthropic's own 7-day
  window, when the headers report it, is in the quota view instead.
- Tokens: input + output + cache_read + cache_creation of every response, all models.
- Burn rate: tokens of the responses that ended in the trailing hour / 3600 s.
- Projected exhaustion (with `--weekly-token-budget`): now + remaining / burn rate, when
  that falls before the reset; None when the pace does not exhaust the budget this week.
The count lives in memory and is seeded from the store when the core starts.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta, timezone
from typing import Any

from clauditor.clock import iso
from clauditor.sessions.models import TokenCounts

WEEK_SECONDS = 7 * 86400
BURN_WINDOW_SECONDS = 3600.0


def week_start(ts: float) -> float:
    day = datetime.fromtimestamp(ts, timezone.utc)
    monday = (day - timedelta(days=day.weekday())).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    return monday.timestamp()


def all_tokens(t: TokenCounts) -> int:
    return t.input + t.output + t.cache_read + t.cache_creation


class WeeklyTokens:
    def __init__(self, budget: int | None = None) -> None:
        self.budget = budget
        self.week_start: float | None = None
        self.tokens = TokenCounts()
        self._recent: deque[tuple[float, int]] = deque()  # (ended at, tokens), trailing hour

    def _roll(self, ts: float) -> bool:
        """Move to ts's week if it is newer; False when ts belongs to an older week."""
        start = week_start(ts)
        if self.week_start is None or start > self.week_start:
            self.week_start = start
            self.tokens = TokenCounts()
            return True
        return start == self.week_start

    def seed(self, tokens: TokenCounts, now: float) -> None:
        """What the store counted since this week began (core start)."""
        if self._roll(now):
            self.tokens.add(tokens)

    def add(self, ts: float, t: TokenCounts) -> None:
        if not self._roll(ts):
            return
        self.tokens.add(t)
        n = all_tokens(t)
        if n:
            self._recent.append((ts, n))
        self._trim(ts)

    def _trim(self, now: float) -> None:
        while self._recent and self._recent[0][0] <= now - BURN_WINDOW_SECONDS:
            self._recent.popleft()

    def used(self, now: float) -> int:
        if self.week_start is None or week_start(now) != self.week_start:
            return 0
        return all_tokens(self.tokens)

    def burn_rate(self, now: float) -> float:
        """Tokens per second over the trailing hour. Read-only: metric readers call it
        from their own thread (tuple() copies the deque in one step under the GIL)."""
        since = now - BURN_WINDOW_SECONDS
        return sum(n for ts, n in tuple(self._recent) if since < ts <= now) / BURN_WINDOW_SECONDS

    @staticmethod
    def resets_at(now: float) -> float:
        return week_start(now) + WEEK_SECONDS

    def projected_exhaustion_at(self, now: float) -> float | None:
        if self.budget is None:
            return None
        remaining = self.budget - self.used(now)
        if remaining <= 0:
            return None  # already exhausted
        rate = self.burn_rate(now)
        if rate <= 0:
            return None
        at = now + remaining / rate
        return at if at < self.resets_at(now) else None

    def view(self, now: float) -> dict[str, Any]:
        used = self.used(now)
        current = self.week_start is not None and week_start(now) == self.week_start
        t = self.tokens if current else TokenCounts()
        budget = self.budget
        exhaustion = self.projected_exhaustion_at(now)
        return {
            "week_start": iso(week_start(now)),
            "resets_at": iso(self.resets_at(now)),
            "tokens": used,
            "tokens_by_type": {
                "input": t.input,
                "output": t.output,
                "cache_read": t.cache_read,
                "cache_creation": t.cache_creation,
            },
            "budget": budget,
            "remaining": None if budget is None else max(0, budget - used),
            "used_fraction": None if not budget else used / budget,
            "exhausted": budget is not None and used >= budget,
            "burn_rate_tokens_per_hour": self.burn_rate(now) * 3600.0,
            "projected_exhaustion_at": iso(exhaustion),
            "seconds_to_exhaustion": None if exhaustion is None else exhaustion - now,
        }
