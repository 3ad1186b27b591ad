"""Diagnosis rules. Each looks at one session's rows and returns a Finding or nothing.

Pure functions over plain dicts (the store's rows), so the same rules run on a live
session (after a flush) and on last month's history. Thresholds are module constants:
they are heuristics and the messages say so where it matters.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from clauditor.claude_code import AGENT_TOOLS
from clauditor.money import USD_BRIEF_PLACES, usd

Severity = Literal["info", "warning", "critical"]
Row = dict[str, Any]

CONTEXT_BLOAT_FILL = 0.6
NEAR_COMPACTION_TURNS = 3.0
TOOL_FAILURE_STREAK = 3
RETRY_STORM = 3
SLOW_TTFT_FACTOR = 3.0
SLOW_TTFT_MIN_MS = 2000.0
RUNAWAY_SESSION_USD = 10.0
RUNAWAY_TURN_USD = 2.0
# Where the time went: said once the session has this much turn time and one part (other
# than the model's own generating) took at least this share of it.
TIME_MIN_SECONDS = 60.0
TIME_DOMINANT_SHARE = 0.5


@dataclass(frozen=True)
class SessionRows:
    session: Row
    turns: list[Row] = field(default_factory=list)
    requests: list[Row] = field(default_factory=list)
    tool_calls: list[Row] = field(default_factory=list)
    compactions: list[Row] = field(default_factory=list)


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    message: str
    evidence: dict[str, Any]
    advice: list[str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _turns_of(rows: list[Row]) -> list[int]:
    return sorted({r["turn"] for r in rows if r.get("turn") is not None})


def cache_miss_ttl(s: SessionRows) -> Finding | None:
    misses = [r for r in s.requests if r.get("cache_status") == "miss_ttl"]
    if not misses:
        return None
    waste = usd(sum(r.get("cache_miss_waste_usd") or 0.0 for r in misses), USD_BRIEF_PLACES)
    return Finding(
        "cache_miss_ttl",
        "warning",
        f"The prompt cache expired between turns {len(misses)} time(s): each time the whole "
        f"context was written again (about ${waste:.2f} more than cache reads would have cost).",
        {"turns": _turns_of(misses), "misses": len(misses), "waste_usd": waste},
        [
            "Answer within the cache TTL (5 minutes by default) when you want to keep a context.",
            "For long pauses, start a fresh session with a short summary instead of resuming.",
            "Subscribers get a 1 h cache TTL from Claude Code; API-key users pay the 5 min TTL.",
        ],
    )


def cache_thrash(s: SessionRows) -> Finding | None:
    misses = [r for r in s.requests if r.get("cache_status") == "miss_thrash"]
    if not misses:
        return None
    return Finding(
        "cache_thrash",
        "warning",
        f"The cache missed {len(misses)} time(s) while it was still warm: the model, effort "
        "level or tool set changed, and each change starts a new cache.",
        {"turns": _turns_of(misses), "misses": len(misses)},
        [
            "Avoid switching models or effort levels in the middle of a session.",
            "Adding or removing MCP servers changes the tool list and invalidates the cache.",
        ],
    )


def context_bloat(s: SessionRows) -> Finding | None:
    peak = s.session.get("context_peak") or 0.0
    if peak < CONTEXT_BLOAT_FILL:
        return None
    return Finding(
        "context_bloat",
        "warning" if peak < 0.85 else "critical",
        f"The context reached {peak:.0%} of the window: every request re-sends it, so turns "
        "get slower and dearer.",
        {"context_peak": round(peak, 4), "turns": s.session.get("turns")},
        [
            "Use /compact at a natural break, or /clear when you switch tasks.",
            "Ask for targeted reads (a function, a range of lines) instead of whole files.",
        ],
    )


def near_compaction(s: SessionRows) -> Finding | None:
    left = s.session.get("turns_to_compact")
    if left is None or left > NEAR_COMPACTION_TURNS:
        return None
    return Finding(
        "near_compaction",
        "warning",
        f"At the recent growth rate, auto-compaction is about {left:.1f} turn(s) away "
        "(an estimate).",
        {"turns_to_compact": left, "context_fill": s.session.get("context_fill")},
        [
            "Compact now with /compact and a focus hint, so you choose what is kept.",
            "Or finish the current task and start a fresh session.",
        ],
    )


def compaction_happened(s: SessionRows) -> Finding | None:
    if not s.compactions:
        return None
    before = [c.get("context_tokens_before") or 0 for c in s.compactions]
    return Finding(
        "compaction_happened",
        "info",
        f"The conversation was compacted {len(s.compactions)} time(s); details from before "
        "each compaction survive only as a summary.",
        {"turns": _turns_of(s.compactions), "context_tokens_before": before},
        ["Re-state key constraints after a compaction if answers start to drift."],
    )


def model_fallback(s: SessionRows) -> Finding | None:
    swapped = [r for r in s.requests if r.get("fallback")]
    if not swapped:
        return None
    pairs = sorted(
        {f"{r.get('model_requested')} -> {r.get('model_fallback_actual')}" for r in swapped}
    )
    return Finding(
        "model_fallback",
        "warning",
        f"{len(swapped)} request(s) were answered by another model than the one asked for: "
        + ", ".join(pairs),
        {"turns": _turns_of(swapped), "requests": len(swapped), "pairs": pairs},
        [
            "Fallbacks happen under load (529 overloaded); quality and cost follow the actual "
            "model.",
            "Pin the model with --model if a fallback model is not acceptable for this work.",
        ],
    )


def tool_failure_streak(s: SessionRows) -> Finding | None:
    calls = sorted(s.tool_calls, key=lambda c: c.get("requested_at") or "")
    longest: list[Row] = []
    current: list[Row] = []
    for call in calls:
        if call.get("outcome") == "error":
            current.append(call)
            if len(current) > len(longest):
                longest = list(current)
        else:
            current = []
    if len(longest) < TOOL_FAILURE_STREAK:
        return None
    tools = sorted({c["name"] for c in longest})
    return Finding(
        "tool_failure_streak",
        "warning",
        f"{len(longest)} tool calls failed in a row ({', '.join(tools)}): the agent was "
        "probably stuck retrying.",
        {"turns": _turns_of(longest), "streak": len(longest), "tools": tools},
        [
            "Check the failing command or path yourself and give the agent the fix.",
            "Interrupt (Esc) early when the same tool keeps failing.",
        ],
    )


def upstream_unreachable(s: SessionRows) -> Finding | None:
    failed = [r for r in s.requests if r.get("error_type") == "upstream_unreachable"]
    if not failed:
        return None
    return Finding(
        "upstream_unreachable",
        "critical",
        f"clauditor cannot reach its upstream: {len(failed)} request(s) got Envoy's own 503 "
        '("upstream connect error"); Anthropic never saw them.',
        {"turns": _turns_of(failed), "requests": len(failed)},
        [
            "Check `clauditor up --upstream` (default https://api.anthropic.com) and this "
            "machine's network or proxy settings.",
        ],
    )


def retry_storm(s: SessionRows) -> Finding | None:
    if upstream_unreachable(s) is not None:
        return None  # the retries are Claude Code's reconnects, not Anthropic's overload
    retries = [r for r in s.requests if r.get("retry")]
    overloaded = [r for r in s.requests if r.get("status") in (429, 529)]
    errors = [r for r in s.requests if r.get("error_type")]
    if len(retries) < RETRY_STORM and len(overloaded) < RETRY_STORM:
        return None
    return Finding(
        "retry_storm",
        "warning",
        f"{len(retries)} retried request(s) and {len(overloaded)} overloaded/rate-limited "
        "responses: time went into waiting on the upstream, not into work.",
        {
            "turns": _turns_of(retries or overloaded),
            "retries": len(retries),
            "overloaded": len(overloaded),
            "errors": len(errors),
        },
        [
            "Anthropic was overloaded or you hit a rate limit; retry later or lower concurrency.",
            "Running many sessions at once shares one rate limit.",
        ],
    )


def slow_turns(s: SessionRows) -> Finding | None:
    ttfts = [r["ttft_ms"] for r in s.requests if r.get("ttft_ms") is not None]
    if len(ttfts) < 3:
        return None
    norm = statistics.median(ttfts)
    slow = [
        r
        for r in s.requests
        if r.get("ttft_ms") is not None
        and r["ttft_ms"] >= max(SLOW_TTFT_FACTOR * norm, SLOW_TTFT_MIN_MS)
    ]
    if not slow:
        return None
    worst = max(r["ttft_ms"] for r in slow)
    return Finding(
        "slow_turns",
        "info",
        f"{len(slow)} request(s) took over {SLOW_TTFT_FACTOR:.0f}x the session's usual time to "
        f"first token (median {norm:.0f} ms, worst {worst:.0f} ms).",
        {"turns": _turns_of(slow), "median_ttft_ms": round(norm, 1), "worst_ttft_ms": worst},
        [
            "Large contexts and cache misses slow the first token; see the cache findings.",
            "Upstream load varies; a single slow turn is not worth acting on.",
        ],
    )


def runaway_cost(s: SessionRows) -> Finding | None:
    total = s.session.get("estimated_cost_usd") or 0.0
    dear = [t for t in s.turns if (t.get("cost_usd") or 0.0) >= RUNAWAY_TURN_USD]
    if total < RUNAWAY_SESSION_USD and not dear:
        return None
    return Finding(
        "runaway_cost",
        "warning",
        f"This session cost about ${total:.2f} (an estimate from list prices)"
        + (f"; {len(dear)} turn(s) cost over ${RUNAWAY_TURN_USD:.0f} each." if dear else "."),
        {"cost_usd": usd(total, USD_BRIEF_PLACES), "turns": _turns_of(dear)},
        [
            "Long contexts are re-sent every request: compact or start fresh between tasks.",
            "Keep the cache warm (see cache findings); cache reads cost a tenth of input.",
        ],
    )


# sessions.timing.TIME_PARTS as stored, with the words a finding uses for each.
_TIME_WORDS = {
    "waiting_for_model_ms": "waiting for the model's first token",
    "generating_ms": "the model generating",
    "tools_ms": "tools",
    "waiting_for_you_ms": "waiting for you (permission prompts)",
    "retries_ms": "failed attempts and retry backoff",
    "subagents_ms": "foreground subagents",
}
_TIME_ADVICE = {
    "waiting_for_model_ms": [
        "Large contexts and cache misses slow the first token: compact, keep the cache warm.",
    ],
    "tools_ms": [
        "Make the slowest command faster or narrower (a test subset, a smaller search).",
        "Long-running commands can run in the background while the agent works on.",
    ],
    "waiting_for_you_ms": [
        "Allow the commands you always approve (permissions in Claude Code's settings).",
        "`clauditor watch --notify` rings when a session waits on you.",
    ],
    "retries_ms": ["Anthropic was overloaded or rate-limited; see the retry findings."],
    "subagents_ms": ["Background subagents (the Agent tool's default) let the turn go on."],
}


def _minutes(ms: float) -> str:
    seconds = ms / 1000.0
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min".replace(".0 min", " min")


def time_went_to(s: SessionRows) -> Finding | None:
    """The part of the session's turn time that dominates it, with the worst offender."""
    totals = {p: sum(t.get(p) or 0.0 for t in s.turns) for p in _TIME_WORDS}
    whole = sum(totals.values())
    if whole < TIME_MIN_SECONDS * 1000.0:
        return None
    part = max((p for p in totals if p != "generating_ms"), key=lambda p: totals[p])
    share = totals[part] / whole
    if share < TIME_DOMINANT_SHARE:
        return None
    message = f"{share:.0%} of this session's turn time was {_TIME_WORDS[part]}"
    evidence: dict[str, Any] = {
        "turns": sorted(
            t["turn"]
            for t in s.turns
            if t.get("turn") is not None
            and (t.get(part) or 0.0) > 0
            and (t.get(part) or 0.0) >= max(t.get(p) or 0.0 for p in _TIME_WORDS)
        ),
        "share": round(share, 3),
        "time_ms": {p: round(v, 3) for p, v in totals.items()},
    }
    calls = [
        c
        for c in s.tool_calls
        if c.get("duration_ms") is not None
        and not c.get("subagent")
        and not c.get("background")
        and (c.get("name") in AGENT_TOOLS) == (part == "subagents_ms")
    ]
    if part in ("tools_ms", "subagents_ms") and calls:
        worst = max(calls, key=lambda c: c["duration_ms"])
        what = worst.get("input_summary") or ""
        label = f"{worst['name']} `{what}`" if what else str(worst["name"])
        message += f"; {label} alone {_minutes(worst['duration_ms'])}"
        evidence["longest_tool"] = {
            "name": worst["name"],
            "summary": what or None,
            "duration_ms": worst["duration_ms"],
            "turn": worst.get("turn"),
        }
    return Finding("time_went_to", "info", message + ".", evidence, _TIME_ADVICE[part])


RULES: list[Callable[[SessionRows], Finding | None]] = [
    cache_miss_ttl,
    cache_thrash,
    context_bloat,
    near_compaction,
    compaction_happened,
    model_fallback,
    tool_failure_streak,
    upstream_unreachable,
    retry_storm,
    slow_turns,
    runaway_cost,
    time_went_to,
]


def diagnose(rows: SessionRows) -> list[Finding]:
    return [f for f in (rule(rows) for rule in RULES) if f is not None]
