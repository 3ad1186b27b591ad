"""Prompt-cache status of one request, from its usage and what the session cached before.

A session has one cache per thread (`main`, with compaction requests, or `subagent`) and
model: a CacheLine remembers the newest request that used it (end time, TTL, the prefix it
left cached = cache_read + cache_creation, the effort level and tool list it was built with).

Rules, for a request with R = cache_read and C = cache_creation tokens, started at t:
- none (None): R == 0 and C == 0 -- no breakpoints, or a prompt below the minimum size.
- hit: R >= 90% of the prefix the same line left cached; C is then the new turn's delta
  (Claude Code writes it on every request), however big. With no earlier request on the
  line (first subagent, core restarted): hit when R > 0 and C <= R, else partial.
- otherwise the request read less than was cached:
  - miss_thrash: the thread's newest line, or this model's line, was still warm at t and
    was built with another model, effort level or tool list;
  - cold: nothing was read and this line never saw a request (a compaction confirmed by
    its continuation turn starts the main thread's lines afresh);
  - miss_ttl: the gap since the line's last request exceeded its TTL (R may be small:
    another session can keep a shared prefix warm);
  - partial: part of the prefix was read (a compaction or edit re-wrote the rest);
  - miss: nothing was read although the line was warm and unchanged (evicted).
TTL in force: 1 h when the request asked `ttl: "1h"` or the response wrote ephemeral_1h
tokens, else 5 min; the line expires at the request's end + TTL.
Estimates: rebuild cost = the prefix now cached x the write price at that TTL; waste of a
miss or partial = the re-written tokens (at most what was cached before, minus what was
read) x (write price - read price).
"""

from __future__ import annotations

from dataclasses import dataclass

from clauditor.sessions.models import CacheLine

HIT_FRACTION = 0.9
TTL_5M = 300
TTL_1H = 3600
STATUSES = ("cold", "hit", "partial", "miss_ttl", "miss_thrash", "miss")
MISSES = frozenset({"partial", "miss_ttl", "miss_thrash", "miss"})


@dataclass(frozen=True, slots=True)
class CacheKey:
    model: str
    effort: str | None
    tools_digest: str


def thread_of(kind: str) -> str:
    return "main" if kind in ("main", "compaction") else kind


def ttl_in_force(asked_seconds: int, written_1h_tokens: int) -> int:
    return TTL_1H if asked_seconds >= TTL_1H or written_1h_tokens > 0 else TTL_5M


def _warm_elsewhere(line: CacheLine | None, key: CacheKey, t: float) -> bool:
    return (
        line is not None
        and line.warm_at(t)
        and not line.same_key(key.model, key.effort, key.tools_digest)
    )


def classify(
    read: int,
    creation: int,
    key: CacheKey,
    t: float,
    line: CacheLine | None,
    thread_last: CacheLine | None,
) -> str | None:
    """line: this (thread, model)'s cache; thread_last: the thread's newest, any model."""
    if read == 0 and creation == 0:
        return None
    if line is not None and read >= HIT_FRACTION * line.cached_tokens:
        return "hit"
    if line is None and read > 0:
        return "hit" if creation <= read else "partial"
    if _warm_elsewhere(thread_last, key, t) or _warm_elsewhere(line, key, t):
        return "miss_thrash"
    if line is None:
        return "cold"
    if not line.warm_at(t):
        return "miss_ttl"
    return "partial" if read > 0 else "miss"


def rewritten_tokens(status: str | None, read: int, creation: int, before: CacheLine | None) -> int:
    """Tokens a miss wrote again that were cached before (0 for hits and cold starts)."""
    if status not in MISSES or before is None:
        return 0
    return max(0, min(creation, before.cached_tokens - read))
