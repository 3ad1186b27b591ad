"""A session pane opened late still shows what happened: /watch-shaped events rebuilt from
the session's detail (GET /api/sessions/{id}), older than what /watch replays itself."""

from __future__ import annotations

from typing import Any

from clauditor.clock import parse_iso

HISTORY_EVENTS = 60  # the newest this many: a pane's feed, not the whole session
REPLAY_SECONDS = 6.0  # /watch replays the last 5 s itself: nothing twice


def _event(type_: str, sid: str, ts: str | None, **fields: Any) -> dict[str, Any] | None:
    if not ts:
        return None
    return {"type": type_, "session_id": sid, "ts": ts, "history": True, **fields}


def history_events(detail: dict[str, Any], now: float) -> list[dict[str, Any]]:
    """Turns, requests and tool calls of a session detail as /watch events, oldest first,
    each marked `history`; none from the last REPLAY_SECONDS (the live replay has them)."""
    sid = detail["session"]["session_id"]
    out: list[dict[str, Any] | None] = []
    for t in detail.get("turns", []):
        out.append(
            _event(
                "turn_start", sid, t.get("started_at"), turn=t.get("turn"), trigger=t.get("trigger")
            )
        )
        if t.get("outcome") not in (None, "in_progress"):
            out.append(
                _event(
                    "turn_end",
                    sid,
                    t.get("ended_at"),
                    turn=t.get("turn"),
                    outcome=t.get("outcome"),
                    stop_reason=t.get("stop_reason"),
                    duration_ms=t.get("duration_ms"),
                    usage={"output_tokens": t.get("output_tokens") or 0},
                    cost_usd=t.get("cost_usd"),
                    time=t.get("time"),
                )
            )
    for r in detail.get("requests", []):
        out.append(
            _event(
                "request_end",
                sid,
                r.get("ended_at"),
                kind=r.get("kind"),
                model=r.get("model_responded") or r.get("model_requested"),
                status=r.get("status"),
                stop_reason=r.get("stop_reason"),
                duration_ms=r.get("duration_ms"),
                usage={"output_tokens": r.get("output_tokens") or 0},
                cost_usd=r.get("cost_usd"),
                error_type=r.get("error_type"),
            )
        )
    for c in detail.get("tool_calls", []):
        name = c.get("name")
        summary = c.get("summary")
        out.append(_event("tool_use", sid, c.get("requested_at"), tool=name, summary=summary))
        if c.get("outcome") not in (None, "pending"):
            out.append(
                _event(
                    "tool_result",
                    sid,
                    c.get("result_at"),
                    tool=name,
                    outcome=c.get("outcome"),
                    duration_ms=c.get("duration_ms"),
                )
            )
    events = [
        e for e in out if e is not None and (parse_iso(e["ts"]) or now) < now - REPLAY_SECONDS
    ]
    events.sort(key=lambda e: parse_iso(e["ts"]) or 0.0)
    return events[-HISTORY_EVENTS:]
