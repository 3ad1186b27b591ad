"""Render a Message (the unary JSON shape) as the SSE bytes the Messages API streams.

Follows shared/docs/anthropic-api.md: message_start (empty content, output_tokens 1),
per block start/delta*/stop, message_delta with cumulative usage, message_stop, pings.
"""

from __future__ import annotations

import json
from typing import Any


def _dump(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _pieces(s: str, size: int) -> list[str]:
    size = max(1, size)
    return [s[i : i + size] for i in range(0, len(s), size)]


def event_bytes(name: str, data: Any, *, crlf: bool = False, trailing_space: bool = False) -> bytes:
    nl = "\r\n" if crlf else "\n"
    payload = data if isinstance(data, str) else _dump(data)
    pad = " " if trailing_space else ""
    return f"event: {name}{nl}data: {payload}{pad}{nl}{nl}".encode()


def message(
    content: list[dict[str, Any]],
    *,
    usage: dict[str, Any] | None = None,
    stop_reason: str | None = "end_turn",
    model: str = "claude-opus-4-8",
    msg_id: str = "msg_01TestTestTestTestTest",
) -> dict[str, Any]:
    """A unary Message JSON with sensible defaults."""
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage
        if usage is not None
        else {
            "input_tokens": 12,
            "cache_creation_input_tokens": 100,
            "cache_read_input_tokens": 2000,
            "cache_creation": {"ephemeral_5m_input_tokens": 40, "ephemeral_1h_input_tokens": 60},
            "output_tokens": 33,
            "service_tier": "standard",
        },
    }


def message_from_fixture(response: dict[str, Any], msg_id: str = "msg_fixture") -> dict[str, Any]:
    """The Message a fixture's `response` summary describes."""
    return message(
        response["content"],
        usage=response["usage"],
        stop_reason=response["stop_reason"],
        model=response["model"],
        msg_id=msg_id,
    )


_START_KEYS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
_DELTA_ONLY = ("output_tokens_details", "iterations", "server_tool_use")


def render_sse(
    msg: dict[str, Any],
    *,
    text_piece: int = 7,
    json_piece: int = 5,
    pings: bool = True,
    crlf: bool = False,
    trailing_space: bool = False,
    stop: bool = True,
    error_after_blocks: int | None = None,
    error_type: str = "overloaded_error",
) -> bytes:
    """SSE bytes of msg. stop=False cuts before message_stop; error_after_blocks injects
    `event: error` after that many blocks and ends the stream there."""
    ev: list[bytes] = []

    def emit(name: str, data: dict[str, Any]) -> None:
        ev.append(event_bytes(name, data, crlf=crlf, trailing_space=trailing_space))

    usage = msg.get("usage") or {}
    start_usage = {k: v for k, v in usage.items() if k not in _DELTA_ONLY}
    start_usage["output_tokens"] = 1
    start = {k: v for k, v in msg.items() if k not in ("content", "usage")}
    start.update(content=[], stop_reason=None, stop_sequence=None, usage=start_usage)
    emit("message_start", {"type": "message_start", "message": start})
    if pings:
        emit("ping", {"type": "ping"})
    for i, block in enumerate(msg["content"]):
        if error_after_blocks is not None and i == error_after_blocks:
            err = {"type": error_type, "message": "Overloaded"}
            emit("error", {"type": "error", "error": err})
            return b"".join(ev)
        btype = block["type"]
        if btype == "text":
            first = {"type": "text", "text": ""}
        elif btype == "thinking":
            first = {"type": "thinking", "thinking": "", "signature": ""}
        elif btype in ("tool_use", "server_tool_use"):
            first = {k: v for k, v in block.items() if k != "input"}
            first["input"] = {}
        else:  # redacted_thinking, fallback, result blocks, unknown: sent whole
            first = block
        emit(
            "content_block_start",
            {"type": "content_block_start", "index": i, "content_block": first},
        )
        deltas: list[dict[str, Any]] = []
        if btype == "text":
            deltas = [{"type": "text_delta", "text": p} for p in _pieces(block["text"], text_piece)]
        elif btype == "thinking":
            deltas = [
                {"type": "thinking_delta", "thinking": p}
                for p in _pieces(block.get("thinking", ""), text_piece)
            ]
            deltas.append({"type": "signature_delta", "signature": block.get("signature", "sig")})
        elif btype in ("tool_use", "server_tool_use"):
            raw = _dump(block["input"])
            deltas = [{"type": "input_json_delta", "partial_json": ""}]
            deltas += [
                {"type": "input_json_delta", "partial_json": p} for p in _pieces(raw, json_piece)
            ]
        for d in deltas:
            emit("content_block_delta", {"type": "content_block_delta", "index": i, "delta": d})
            if pings and len(ev) % 9 == 0:
                emit("ping", {"type": "ping"})
        emit("content_block_stop", {"type": "content_block_stop", "index": i})
    # Cumulative usage: the real API repeats input/cache counts next to the final output.
    delta_usage = {k: usage[k] for k in _START_KEYS if k in usage}
    delta_usage["output_tokens"] = usage.get("output_tokens", 0)
    delta_usage.update({k: usage[k] for k in _DELTA_ONLY if k in usage})
    emit(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {
                "stop_reason": msg.get("stop_reason"),
                "stop_sequence": msg.get("stop_sequence"),
            },
            "usage": delta_usage,
        },
    )
    if stop:
        emit("message_stop", {"type": "message_stop"})
    return b"".join(ev)


def split_at(data: bytes, offsets: list[int]) -> list[bytes]:
    """data cut at the given offsets (any order, duplicates and out-of-range ignored)."""
    cuts = sorted({o for o in offsets if 0 < o < len(data)})
    out, prev = [], 0
    for c in cuts:
        out.append(data[prev:c])
        prev = c
    out.append(data[prev:])
    return out
