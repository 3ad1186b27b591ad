"""What the fake upstream saw, as fixture lines (the format of
tests/fixtures/claude-code-<version>/): each exchange's request as sent, headers in order
with auth headers dropped and the key replaced by FAKE_KEY, and the response the fake gave.
`Reply.from_record` reads a line's response back, to replay it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from clauditor.sim.claude_cli import FAKE_KEY
from clauditor.sim.exchange import Exchange

__all__ = ["record_of", "records_of"]

# Dropped from captured headers; x-api-key is kept with FAKE_KEY as its value.
_AUTH_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})


def _body_of(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def _response_of(ex: Exchange) -> dict[str, Any]:
    out: dict[str, Any] = {"status": ex.status}
    reply = ex.reply
    if ex.method != "POST" or reply is None:
        out["request_id"] = ex.request_id
        return out
    if ex.status != 200:
        try:
            etype = json.loads(ex.decoded_response)["error"]["type"]
        except (ValueError, KeyError, TypeError):
            etype = reply.error_type
        out.update(kind="error", error_type=etype, request_id=ex.request_id)
        return out
    message = ex.message or {}
    content = message.get("content") or []
    if ex.stream and reply.sse_error_after is not None:
        kind = "sse_error"
    elif ex.stream and reply.truncate_after is not None:
        kind = "truncated"
    elif any(b.get("type") == "tool_use" for b in content):
        kind = "tool_use"
    else:
        kind = "text"
    out.update(
        kind=kind,
        stream=ex.stream,
        model=message.get("model"),
        stop_reason=message.get("stop_reason"),
        content=content,
        usage=message.get("usage"),
    )
    if kind == "sse_error":
        out["sse_error_after_events"] = reply.sse_error_after
    if ex.stream:
        out["events_sent"] = ex.events_sent
    out["request_id"] = ex.request_id
    return out


def record_of(ex: Exchange, seq: int, epoch_offset: float) -> dict[str, Any]:
    """One exchange as a fixture line (the format of tests/fixtures/claude-code-2.1.332):
    headers in order with auth headers dropped and the key replaced by FAKE_KEY, the body
    as JSON, and the response the fake gave (status, kind, model, content, usage...).
    epoch_offset: time.time() - time.monotonic(), to turn the fake's clock into epoch."""
    headers = [
        [k, FAKE_KEY if k.lower() == "x-api-key" else v]
        for k, v in ex.headers
        if k.lower() not in _AUTH_HEADERS
    ]
    query_params = dict(p.partition("=")[::2] for p in ex.query.split("&") if p)
    return {
        "seq": seq,
        "ts": round(ex.started + epoch_offset, 6),
        "method": ex.method,
        "path": ex.path,
        "query": ex.query,
        "query_params": query_params,
        "http_version": ex.http_version,
        "headers": headers,
        "body_bytes": len(ex.body),
        "body": _body_of(ex.body),
        "response": _response_of(ex),
        "duration_s": round(ex.ended - ex.started, 4),
    }


def records_of(exchanges: Iterable[Exchange]) -> list[dict[str, Any]]:
    """Fixture lines in request order (the fake records exchanges when they end)."""
    offset = time.time() - time.monotonic()
    ordered = sorted(exchanges, key=lambda e: e.started)
    return [record_of(ex, i, offset) for i, ex in enumerate(ordered, 1)]
