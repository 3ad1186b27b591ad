"""Replay fixture exchanges into a tracker as domain events, with a manual clock."""

from __future__ import annotations

from typing import Any

from clauditor.clock import ManualClock
from clauditor.domain.events import (
    ExchangeFinished,
    FirstToken,
    QuotaHeaders,
    RequestParsed,
    RequestStarted,
    ResponseStarted,
    ToolUseSeen,
)
from clauditor.domain.interpreter import classify_error
from clauditor.parsing.fold import MessageResult, fold_message_json
from clauditor.parsing.request import parse_request
from clauditor.parsing.response import ResponseParser
from clauditor.sessions.tracker import SessionTracker
from clauditor.sim.replies import Reply
from clauditor.sim.wire import render_reply
from tests.helpers import body_bytes, headers_of


def result_of(response: dict[str, Any]) -> MessageResult:
    """The MessageResult of a recorded response. A stream cut short (`kind: sse_error`:
    events then an SSE `error`; `kind: truncated`: events then nothing) goes through the
    real response parser on the bytes the fake upstream sends for it, so its result holds
    the usage message_start reported before the error, as on the wire."""
    if response.get("kind") in ("sse_error", "truncated") and response.get("status", 200) == 200:
        status, content_type, body = render_reply(
            Reply.from_record(response), str(response.get("model") or ""), stream=True
        )
        parser = ResponseParser(status, content_type, None)
        parser.feed(body)
        return parser.finish()
    if response.get("status", 200) != 200:
        return fold_message_json(
            {"type": "error", "error": {"type": response.get("error_type"), "message": "x"}}
        )
    return fold_message_json(
        {
            "type": "message",
            "id": "msg_x",
            "role": "assistant",
            "model": response["model"],
            "content": response["content"],
            "stop_reason": response["stop_reason"],
            "stop_sequence": None,
            "usage": response["usage"],
        }
    )


class Replayer:
    def __init__(self, tracker: SessionTracker, clock: ManualClock) -> None:
        self.tracker = tracker
        self.clock = clock
        self.next_id = 1

    def exchange(
        self,
        record: dict[str, Any],
        *,
        duration: float = 1.0,
        result: MessageResult | None = None,
        status: int | None = None,
        quota: dict[str, str] | None = None,
    ) -> int:
        """One whole exchange: request, response start, first token, tool uses, end."""
        ex = self.next_id
        self.next_id += 1
        headers = headers_of(record)
        t = self.tracker
        start = self.clock.now()
        t.handle(RequestStarted(ex, start, headers.get("x-claude-code-session-id")))
        req = parse_request(headers, body_bytes(record))
        t.handle(RequestParsed(ex, start, start, req, "api.anthropic.com"))
        response = record["response"]
        status = status if status is not None else response.get("status", 200)
        result = result or result_of(response)
        self.clock.advance(duration / 2)
        t.handle(
            ResponseStarted(
                ex,
                self.clock.now(),
                status,
                response.get("request_id"),
                QuotaHeaders(dict(quota or {})),
            )
        )
        if status == 200:
            t.handle(FirstToken(ex, self.clock.now()))
        for tu in result.tool_uses:
            t.handle(ToolUseSeen(ex, self.clock.now(), tu))
        self.clock.advance(duration / 2)
        t.handle(
            ExchangeFinished(ex, self.clock.now(), status, result, classify_error(status, result))
        )
        return ex

    def records(self, records: list[dict[str, Any]]) -> list[int]:
        """Every POST /v1/messages of a capture, in order, at its recorded time (the clock
        never goes back: overlapping exchanges are replayed one after the other)."""
        out = []
        for record in records:
            if record.get("method") != "POST" or record.get("path") != "/v1/messages":
                continue
            ts = record.get("ts")
            if isinstance(ts, (int, float)) and ts > self.clock.now():
                self.clock.set(float(ts))
            out.append(
                self.exchange(record, duration=max(float(record.get("duration_s") or 0), 0.001))
            )
        return out
