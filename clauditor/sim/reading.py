"""How the synthetic Claude Code reads a response: SSE bytes in any chunking to events,
events (or one unary JSON body) to what it needs — the content blocks to echo back as
the assistant message, the text, stop reason, usage, tool calls and whether the message
ended or an error cut it.

Written here rather than taken from clauditor.parsing: the simulator is the oracle the
parsers are tested against (see the package docstring), so it reads with its own code.
It reads what the fake, or a proxy passing the fake's bytes, sends; it is not a hardened
parser of hostile input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EventReader", "MessageReader", "Received", "ToolUse", "Usage", "read_unary"]


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_creation_5m_tokens: int = 0
    cache_creation_1h_tokens: int = 0

    def update(self, obj: Any) -> None:
        """Anthropic's rule: each count present overwrites the one before."""
        if not isinstance(obj, dict):
            return
        for key in (
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
        ):
            v = obj.get(key)
            if type(v) is int and v >= 0:
                setattr(self, key, v)
        cc = obj.get("cache_creation")
        if isinstance(cc, dict):
            for key, attr in (
                ("ephemeral_5m_input_tokens", "cache_creation_5m_tokens"),
                ("ephemeral_1h_input_tokens", "cache_creation_1h_tokens"),
            ):
                v = cc.get(key)
                if type(v) is int and v >= 0:
                    setattr(self, attr, v)


@dataclass
class ToolUse:
    id: str
    name: str
    input: dict[str, Any] | None  # None: its JSON did not parse to an object


@dataclass
class Received:
    """One response as the client read it."""

    model: str | None = None
    stop_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    text: str = ""  # the text blocks joined with "\n"
    tool_uses: list[ToolUse] = field(default_factory=list)  # finished blocks, in order
    content: list[dict[str, Any]] = field(default_factory=list)  # to echo (no fallback)
    error_type: str | None = None
    complete: bool = False  # message_stop, or a unary message
    streamed: bool = False

    @property
    def truncated(self) -> bool:
        """A stream that just stopped: no error event and no message_stop."""
        return self.streamed and self.error_type is None and not self.complete


def _error_type(err: Any) -> str:
    found = err.get("type") if isinstance(err, dict) else None
    return found if isinstance(found, str) else "unknown_error"


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _text_of(blocks: list[dict[str, Any]]) -> str:
    return "\n".join(
        t for b in blocks if b.get("type") == "text" and isinstance(t := b.get("text"), str) and t
    )


class EventReader:
    """SSE (WHATWG framing: LF, CRLF or CR line ends, `:` comments) fed in any chunking;
    (event name, data) pairs out."""

    def __init__(self) -> None:
        self._rest = b""  # an unterminated line, or a CR that may pair with the next LF
        self._event = ""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[tuple[str, str]]:
        data = self._rest + chunk
        held = b""
        if b"\r" in data:
            if data.endswith(b"\r"):
                data, held = data[:-1], b"\r"
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = data.split(b"\n")
        self._rest = lines.pop() + held
        out: list[tuple[str, str]] = []
        for line in lines:
            self._line(line, out)
        return out

    def flush(self) -> list[tuple[str, str]]:
        """End of stream: a last event that lacked its blank line."""
        out: list[tuple[str, str]] = []
        rest, self._rest = self._rest.rstrip(b"\r"), b""
        if rest:
            self._line(rest, out)
        self._line(b"", out)
        return out

    def _line(self, line: bytes, out: list[tuple[str, str]]) -> None:
        if not line:
            if self._data:
                out.append(
                    (self._event or "message", b"\n".join(self._data).decode("utf-8", "replace"))
                )
            self._event, self._data = "", []
            return
        if line.startswith(b":"):
            return
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")


class MessageReader:
    """The events of one streamed message, in order; `result()` at any point."""

    def __init__(self) -> None:
        self._r = Received(streamed=True)
        self._blocks: dict[int, dict[str, Any]] = {}
        self._json: dict[int, list[str]] = {}  # tool_use blocks' partial_json pieces

    def feed(self, event: str, data: str) -> None:
        try:
            obj = json.loads(data)
        except ValueError:
            return
        if not isinstance(obj, dict):
            return
        typ = obj.get("type") if isinstance(obj.get("type"), str) else event
        r = self._r
        idx = obj.get("index")
        if typ == "message_start" and isinstance(obj.get("message"), dict):
            msg = obj["message"]
            r.model = _str(msg.get("model")) or r.model
            r.stop_reason = _str(msg.get("stop_reason")) or r.stop_reason
            r.usage.update(msg.get("usage"))
        elif typ == "content_block_start" and type(idx) is int:
            block = obj.get("content_block")
            if isinstance(block, dict):
                self._blocks[idx] = dict(block)
                if block.get("type") == "tool_use":
                    self._json[idx] = []
        elif typ == "content_block_delta" and type(idx) is int:
            self._delta(idx, obj.get("delta"))
        elif typ == "content_block_stop" and type(idx) is int:
            self._stop(idx)
        elif typ == "message_delta":
            delta = obj.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
                r.stop_reason = delta["stop_reason"]
            r.usage.update(obj.get("usage"))
        elif typ == "message_stop":
            r.complete = True
        elif typ == "error":
            r.error_type = _error_type(obj.get("error"))

    def _delta(self, idx: int, delta: Any) -> None:
        block = self._blocks.get(idx)
        if block is None or not isinstance(delta, dict):
            return
        kind = delta.get("type")
        if kind == "text_delta":
            block["text"] = block.get("text", "") + str(delta.get("text", ""))
        elif kind == "thinking_delta":
            block["thinking"] = block.get("thinking", "") + str(delta.get("thinking", ""))
        elif kind == "signature_delta":
            block["signature"] = str(delta.get("signature", ""))
        elif kind == "input_json_delta" and idx in self._json:
            self._json[idx].append(str(delta.get("partial_json", "")))

    def _stop(self, idx: int) -> None:
        block = self._blocks.get(idx)
        pieces = self._json.pop(idx, None)
        if block is None or pieces is None:
            return
        raw = "".join(pieces)
        parsed: Any = block.get("input")  # no deltas: the start carried the input
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
        tool_input = parsed if isinstance(parsed, dict) else None
        self._r.tool_uses.append(
            ToolUse(_str(block.get("id")) or "", _str(block.get("name")) or "", tool_input)
        )

    def result(self) -> Received:
        r = self._r
        inputs = {t.id: t.input for t in r.tool_uses}
        content = []
        for idx in sorted(self._blocks):
            block = self._blocks[idx]
            if block.get("type") == "fallback":
                continue  # a server-side marker, not conversation content
            if block.get("type") == "tool_use":
                # A tool call echoes the input it finished with ({} if it never did).
                block["input"] = inputs.get(block.get("id", "")) or {}
            content.append(block)
        r.content = content
        r.text = _text_of(content)
        return r


def read_unary(obj: Any) -> Received:
    """A non-streamed Message, or an error body {"type": "error", "error": {...}}."""
    r = Received()
    if not isinstance(obj, dict):
        return r
    typ = obj.get("type")
    if typ == "error" or (typ is None and "error" in obj and "content" not in obj):
        r.error_type = _error_type(obj.get("error"))
        return r
    content = obj.get("content")
    if typ not in (None, "message") or not isinstance(content, list):
        return r
    r.model = _str(obj.get("model"))
    r.stop_reason = _str(obj.get("stop_reason"))
    r.usage.update(obj.get("usage"))
    blocks = [b for b in content if isinstance(b, dict)]
    for b in blocks:
        if b.get("type") == "tool_use":
            inp = b.get("input")
            r.tool_uses.append(
                ToolUse(
                    _str(b.get("id")) or "",
                    _str(b.get("name")) or "",
                    inp if isinstance(inp, dict) else None,
                )
            )
    r.content = [b for b in blocks if b.get("type") != "fallback"]
    r.text = _text_of(blocks)
    r.complete = True
    return r
