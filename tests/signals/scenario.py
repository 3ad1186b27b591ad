"""Build Claude Code-shaped exchanges (from a recorded request) with chosen usage and model,
and replay them into a tracker with a ManualClock."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from clauditor.clock import ManualClock
from clauditor.parsing.request import CONTINUATION_PREFIX
from clauditor.sessions.models import RequestRecord, Session
from clauditor.sessions.signals.engine import SignalEngine
from clauditor.sessions.tracker import SessionTracker
from tests.helpers import fixture_posts, headers_of
from tests.sessions.replay import Replayer

SESSION = "5e55a0e1-0000-4000-8000-00000000c0de"
BETAS_1M = (
    "claude-code-20250219,context-1m-2025-08-07,interleaved-thinking-2025-05-14,"
    "context-management-2025-06-27,effort-2025-11-24"
)
BETAS_200K = BETAS_1M.replace("context-1m-2025-08-07,", "")
COMPACT_TEXT = "CRITICAL: Respond with TEXT ONLY. Do NOT call any tools. Summarise."


def usage(
    *,
    input: int = 0,
    output: int = 0,
    read: int = 0,
    write_5m: int = 0,
    write_1h: int = 0,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "input_tokens": input,
        "output_tokens": output,
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": write_5m + write_1h,
        "cache_creation": {
            "ephemeral_5m_input_tokens": write_5m,
            "ephemeral_1h_input_tokens": write_1h,
        },
        **extra,
    }


def record(
    prompt: str,
    u: dict[str, Any],
    *,
    session: str = SESSION,
    model: str = "claude-opus-4-8",
    response_model: str | None = None,
    betas: str = BETAS_1M,
    ttl_1h: bool = False,
    effort: str | None = "high",
    tools: int | None = None,
    compact: bool = False,
    continued: bool = False,
    stop_reason: str = "end_turn",
    content: list[dict[str, Any]] | None = None,
    status: int = 200,
) -> dict[str, Any]:
    """A main-thread request (a compaction request with compact=True) and its response."""
    base = fixture_posts("a_plain_text")[0]
    body = copy.deepcopy(base["body"])
    body["model"] = model
    first = body["messages"][0]["content"]
    first[1]["text"] = prompt
    if continued:
        first[0] = {"type": "text", "text": CONTINUATION_PREFIX + " that ran out of context."}
    if compact:
        body["messages"] += [
            {"role": "assistant", "content": [{"type": "text", "text": "An earlier answer."}]},
            {"role": "user", "content": [{"type": "text", "text": COMPACT_TEXT}]},
        ]
    if ttl_1h:
        body["system"][1]["cache_control"] = {"type": "ephemeral", "ttl": "1h"}
    if effort is None:
        body.pop("output_config", None)
    else:
        body["output_config"] = {"effort": effort}
    if tools is not None:
        body["tools"] = body["tools"][:tools]
    headers = [
        ["X-Claude-Code-Session-Id", session],
        ["anthropic-beta", betas],
        ["User-Agent", "claude-cli/2.1.197 (external, sdk-cli)"],
    ]
    response: dict[str, Any] = {
        "status": status,
        "model": response_model or model,
        "content": content or [{"type": "text", "text": "ok"}],
        "stop_reason": stop_reason,
        "usage": u,
    }
    if status != 200:
        response["error_type"] = {529: "overloaded_error", 429: "rate_limit_error"}.get(status)
    return {"headers": headers, "body": body, "response": response}


class Scenario:
    def __init__(
        self,
        engine: SignalEngine | None = None,
        clock: ManualClock | None = None,
        loader: Callable[[str], Session | None] | None = None,
    ) -> None:
        self.clock = clock or ManualClock(1_800_000_000.0)  # 2027-01-15T08:00:00Z, a Friday
        self.tracker = SessionTracker(
            self.clock, signals=engine or SignalEngine(self.clock), loader=loader
        )
        self.replay = Replayer(self.tracker, self.clock)
        self.engine = self.tracker.signals

    def send(
        self, rec: dict[str, Any], *, duration: float = 2.0, quota: dict[str, str] | None = None
    ) -> RequestRecord:
        ex = self.replay.exchange(rec, duration=duration, quota=quota)
        sid = headers_of(rec)["x-claude-code-session-id"]
        return next(r for r in self.tracker.recent_requests(sid) if r.exchange_id == ex)

    def wait(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def session(self, session_id: str = SESSION) -> Session:
        return self.tracker.sessions[session_id]
