"""Replay fixture exchanges into a tracker as domain events, with a manual clock."""

from __future__ import annotations

import json
from typing import Any

from clauditor.clock import ManualClock
from clauditor.domain.events import (
    ExchangeFinished,
    FirstToken,
    QuotaHeaders,
    ResponseStarted,
    ToolUseSeen,
)
from clauditor.domain.interpreter import Interpreter, classify_error
from clauditor.parsing.fold import MessageResult, fold_message_json
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


def cut(record: dict[str, Any], kind: str, after: int = 0) -> dict[str, Any]:
    """The record with its response cut as the fake upstream cuts one (sim.replies):
    `truncated` closes the stream after `after` events, `sse_error` sends an SSE `error`
    (overloaded_error) after them; message_start still reports the recorded usage."""
    key = {"truncated": "events_sent", "sse_error": "sse_error_after_events"}[kind]
    return {**record, "response": {**record["response"], "kind": kind, key: after}}


def answered_with(record: dict[str, Any], **response: Any) -> dict[str, Any]:
    """The record with these fields of its response replaced (model, content...)."""
    return {**record, "response": {**record["response"], **response}}


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
        """One whole exchange through the real interpreter: the recorded request's headers
        and body, then the response's headers and the bytes the fake upstream sends for
        it (a stream when it was one), the end of the stream at `duration`.

        `result` stands for a response no recording has (cut, failed early, another
        model): its domain events are then handed to the tracker directly, in the order
        and at the times the interpreter emits them."""
        ex = self.next_id
        self.next_id += 1
        headers = headers_of(record)
        start = self.clock.now()
        response = record["response"]
        status = status if status is not None else response.get("status", 200)
        interpreter = Interpreter(self.tracker.handle)
        obs = interpreter.open_exchange(ex, start)
        wire_headers = [(":method", "POST"), (":path", "/v1/messages")]
        wire_headers += [(":authority", "api.anthropic.com"), *headers.items()]
        obs.on_request_headers(wire_headers, start, False)
        obs.on_request_body(body_bytes(record), start, True)
        self.clock.advance(duration / 2)
        response_headers = [(":status", str(status)), *(quota or {}).items()]
        if response.get("request_id"):
            response_headers.append(("request-id", response["request_id"]))
        if result is not None:
            self._inject(ex, status, response.get("request_id"), quota, result, duration)
            return ex
        reply = Reply.from_record({**response, "status": status})
        stream = bool(json.loads(body_bytes(record)).get("stream"))
        _, content_type, body = render_reply(reply, str(response.get("model") or ""), stream=stream)
        obs.on_response_headers(
            [*response_headers, ("content-type", content_type)], self.clock.now(), False
        )
        obs.on_response_body(body, self.clock.now(), False)
        self.clock.advance(duration / 2)
        obs.on_response_body(b"", self.clock.now(), True)
        return ex

    def _inject(
        self,
        ex: int,
        status: int,
        request_id: str | None,
        quota: dict[str, str] | None,
        result: MessageResult,
        duration: float,
    ) -> None:
        t = self.tracker
        t.handle(
            ResponseStarted(
                ex, self.clock.now(), status, request_id, QuotaHeaders(dict(quota or {}))
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
