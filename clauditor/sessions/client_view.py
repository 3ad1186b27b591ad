"""Claude Code's own view of a session beside clauditor's wire view, and where they part.

`clauditor statusline` forwards the accounting Claude Code puts in its status-line payload
(`claude_code.statusline_numbers`: cost, context, rate limits, prompt cache). The core keeps
it on the live session as `client_view` and marks `client_drift`: the numbers on which the
two disagree by more than 1 %. It also answers the status line with what its one line
shows (`statusline_view`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from clauditor.claude_code import statusline_numbers
from clauditor.clock import iso
from clauditor.money import usd
from clauditor.sessions.models import RequestRecord, Session

DRIFT_PCT = 1.0  # a mark past this
DEFAULT_TTL = 300  # the prompt cache's, when neither side says

# What is compared, and how the difference is measured:
# - relative: in % of Claude Code's value (amounts: USD, tokens, seconds);
# - points: both are percentages already, the difference in percentage points;
# - ttl: a timestamp, the difference in % of the cache's TTL (both clocks stamp the end
#   of the same response, so they should agree within a second).
COMPARED: tuple[tuple[str, str], ...] = (
    ("cost_usd", "relative"),
    ("context_tokens", "relative"),
    ("context_window_tokens", "relative"),
    ("cache_ttl_seconds", "relative"),
    ("cache_expires_at", "ttl"),
    ("rate_limit_5h_pct", "points"),
    ("rate_limit_7d_pct", "points"),
)
TIMESTAMPS = frozenset({"cache_expires_at", "rate_limit_5h_resets_at", "rate_limit_7d_resets_at"})


def _difference(how: str, client: float, wire: float, ttl: float) -> float | None:
    """How far apart, per COMPARED; None when Claude Code says 0 and the wire does not
    (no percentage of nothing)."""
    if how == "points":
        return abs(wire - client)
    if how == "ttl":
        return abs(wire - client) / ttl * 100.0
    if client == 0:
        return 0.0 if wire == 0 else None
    return abs(wire - client) / abs(client) * 100.0


def client_drift(
    client: Mapping[str, Any], wire: Mapping[str, Any]
) -> dict[str, dict[str, float | None]]:
    """The compared numbers that disagree by more than DRIFT_PCT: name -> {client, wire,
    diff_pct}. A number either side lacks is not compared. Pure: epoch seconds in, out."""
    ttl = float(wire.get("cache_ttl_seconds") or client.get("cache_ttl_seconds") or DEFAULT_TTL)
    out: dict[str, dict[str, float | None]] = {}
    for name, how in COMPARED:
        c, w = client.get(name), wire.get(name)
        if c is None or w is None:
            continue
        diff = _difference(how, float(c), float(w), ttl)
        # Rounded before the test: 2.02 vs 2.0 is 1.0000000000000009 % in floats.
        if diff is None or round(diff, 6) > DRIFT_PCT:
            pct = None if diff is None else round(diff, 3)
            out[name] = {"client": c, "wire": w, "diff_pct": pct}
    return out


def wire_numbers(session: Session) -> dict[str, Any]:
    """clauditor's own numbers for the fields Claude Code's view has (COMPARED)."""
    signals = session.signals
    line = signals.main_line(session.model)
    used = signals.quota.utilization() if signals.quota is not None else {}
    return {
        "cost_usd": signals.cost_usd,
        "context_tokens": signals.context_tokens,
        "context_window_tokens": signals.context_window,
        "cache_ttl_seconds": line.ttl_seconds if line else None,
        "cache_expires_at": line.expires_at if line else None,
        "rate_limit_5h_pct": used["5h"] * 100.0 if "5h" in used else None,
        "rate_limit_7d_pct": used["7d"] * 100.0 if "7d" in used else None,
    }


def _api(name: str, value: Any) -> Any:
    if name in TIMESTAMPS and isinstance(value, (int, float)):
        return iso(float(value))
    if isinstance(value, float):
        return round(value, 9)  # float noise off the wire's sums; Claude Code's as it sent them
    return value


def _drift_api(drift: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Both sides' values as the API writes them (a timestamp as ISO); diff_pct is a
    percentage whatever the number compared."""
    return {
        name: {k: v if k == "diff_pct" else _api(name, v) for k, v in entry.items()}
        for name, entry in drift.items()
    }


def apply_client_view(session: Session, payload: Any, now: float) -> None:
    """Keep what Claude Code says (its status-line payload, or the part of it the command
    forwarded) on the session, and mark the drift from the wire's numbers."""
    numbers = statusline_numbers(payload)
    session.client_view = {k: _api(k, v) for k, v in numbers.items()} | {"received_at": iso(now)}
    # A response the core is still folding is in Claude Code's totals already, not yet in
    # the wire's: compare once nothing is in flight; until then the last mark stands.
    if not session.in_flight:
        session.client_drift = _drift_api(client_drift(numbers, wire_numbers(session)))


def _newest_main(requests: Iterable[RequestRecord]) -> RequestRecord | None:
    done = [r for r in requests if r.kind == "main" and r.ended_at is not None]
    return max(done, key=lambda r: r.ended_at or 0.0) if done else None


def needs_you_elsewhere(sessions: Iterable[Session], session_id: str) -> int:
    """How many other live sessions wait on the user (state needs_you)."""
    return sum(1 for s in sessions if s.state == "needs_you" and s.session_id != session_id)


def statusline_view(
    session: Session, requests: Iterable[RequestRecord], needs_you_others: int, now: float
) -> dict[str, Any]:
    """What `clauditor statusline` prints for a session, as numbers (it renders them)."""
    signals = session.signals
    newest = _newest_main(requests)
    served = None
    if newest is not None and newest.signals.fallback:
        served = newest.signals.fallback_actual or newest.model_responded
    timed = [r for r in requests if r.kind == "main" and r.ttft_ms is not None]
    last_ttft = max(timed, key=lambda r: r.started_at).ttft_ms if timed else None
    line = signals.main_line(session.model)
    return {
        "session_id": session.session_id,
        "state": session.state,
        "model": session.model,
        "served_model": served,
        "ttft_ms": last_ttft,
        "cache_ttl_seconds": line.ttl_seconds if line else None,
        "cache_left_seconds": round(max(0.0, line.expires_at - now), 1) if line else None,
        "context_fill": signals.context_fill,
        "cost_usd": usd(signals.cost_usd),
        "unpriced_requests": signals.unpriced_requests,
        "needs_you_others": needs_you_others,
        "client_drift": sorted(session.client_drift or {}),
    }
