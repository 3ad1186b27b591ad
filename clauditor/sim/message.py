"""The message a 200 reply carries: its content blocks (ids drawn here), stop reason and
usage (the simulated one with the reply's overrides merged, output tokens ≈ generated
characters / 4), in its unary form and as the sequence of SSE events that streams it.
Data only: `wire` turns it into bytes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from clauditor.sim.ids import new_message_id, new_tool_use_id
from clauditor.sim.replies import Reply

__all__ = ["MessagePlan", "compact_json", "plan_message", "sse_events", "unary_message"]


def compact_json(obj: Any) -> str:
    # Anthropic sends compact JSON with raw (unescaped) UTF-8.
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _split(s: str, n: int) -> list[str]:
    """s in n near-equal non-empty pieces (fewer when s is short)."""
    n = max(1, min(n, len(s)))
    if not s:
        return []
    size, extra = divmod(len(s), n)
    out, pos = [], 0
    for i in range(n):
        step = size + (1 if i < extra else 0)
        out.append(s[pos : pos + step])
        pos += step
    return out


@dataclass
class MessagePlan:
    message_id: str
    model: str
    blocks: list[dict[str, Any]]  # final content blocks (the unary form)
    stop_reason: str
    usage: dict[str, Any]  # final usage (cumulative)
    overrides: dict[str, Any]


def plan_message(reply: Reply, request_model: str, usage: dict[str, Any]) -> MessagePlan:
    blocks: list[dict[str, Any]] = []
    if reply.content is not None:
        blocks = [dict(b) for b in reply.content]
    if reply.fallback_block:
        blocks.insert(0, {"type": "fallback"})
    if reply.content is None and reply.thinking is not None:
        sig = hashlib.sha256(reply.thinking.encode()).hexdigest()
        blocks.append({"type": "thinking", "thinking": reply.thinking, "signature": "Eu" + sig})
    text = reply.text
    if reply.content is None and text is None and not reply.tool_calls and reply.thinking is None:
        text = "OK"
    if reply.content is None and text is not None:
        blocks.append({"type": "text", "text": text})
    for call in reply.tool_calls if reply.content is None else []:
        call_id = call.id or new_tool_use_id()
        blocks.append({"type": "tool_use", "id": call_id, "name": call.name, "input": call.input})
    # Output tokens ≈ generated characters / 4 (text, thinking, tool input JSON).
    out_chars = sum(
        len(b.get("text", ""))
        + len(b.get("thinking", ""))
        + (len(compact_json(b["input"])) if b["type"] == "tool_use" else 0)
        for b in blocks
    )
    final = dict(usage)
    final["output_tokens"] = max(1, out_chars // 4)
    overrides = dict(reply.usage or {})
    for k, v in overrides.items():
        if k == "cache_creation" and isinstance(v, dict):
            final["cache_creation"] = {**final.get("cache_creation", {}), **v}
        else:
            final[k] = v
    has_tools = any(b.get("type") == "tool_use" for b in blocks)
    stop = reply.stop_reason or ("tool_use" if has_tools else "end_turn")
    return MessagePlan(
        new_message_id(), reply.model or request_model, blocks, stop, final, overrides
    )


def unary_message(plan: MessagePlan) -> dict[str, Any]:
    return {
        "model": plan.model,
        "id": plan.message_id,
        "type": "message",
        "role": "assistant",
        "content": plan.blocks,
        "stop_reason": plan.stop_reason,
        "stop_sequence": None,
        "usage": plan.usage,
    }


def sse_events(plan: MessagePlan, reply: Reply) -> list[tuple[str, dict[str, Any]]]:
    """The (event name, data) pairs that stream the message, message_start to message_stop."""
    if reply.start_usage is not None:
        start_usage = dict(reply.start_usage)
    else:
        start_usage = dict(plan.usage)
        start_usage["output_tokens"] = 1
    message = unary_message(plan)
    message.update(content=[], stop_reason=None, usage=start_usage)
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": message}),
        ("ping", {"type": "ping"}),
    ]

    def delta(index: int, d: dict[str, Any]) -> None:
        events.append(
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
        )

    for index, block in enumerate(plan.blocks):
        kind = block["type"]
        if kind == "text":
            start: dict[str, Any] = {"type": "text", "text": ""}
        elif kind == "thinking":
            start = {"type": "thinking", "thinking": "", "signature": ""}
        elif kind == "tool_use":
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        else:
            start = dict(block)
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": start},
            )
        )
        if kind == "text":
            for piece in _split(block["text"], reply.text_chunks):
                delta(index, {"type": "text_delta", "text": piece})
        elif kind == "thinking":
            for piece in _split(block["thinking"], 2):
                delta(index, {"type": "thinking_delta", "thinking": piece})
            delta(index, {"type": "signature_delta", "signature": block["signature"]})
        elif kind == "tool_use":
            # Like the real API: an empty first piece, then the JSON in several pieces.
            delta(index, {"type": "input_json_delta", "partial_json": ""})
            for piece in _split(compact_json(block["input"]), 3):
                delta(index, {"type": "input_json_delta", "partial_json": piece})
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))

    delta_usage: dict[str, Any] = {
        k: plan.usage[k]
        for k in (
            "input_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
            "output_tokens",
        )
        if k in plan.usage
    }
    for k, v in plan.overrides.items():
        if k not in delta_usage and k not in ("cache_creation", "service_tier"):
            delta_usage[k] = v
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": plan.stop_reason, "stop_sequence": None},
                "usage": delta_usage,
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events
