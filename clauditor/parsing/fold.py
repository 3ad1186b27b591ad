"""Fold Anthropic Messages responses (SSE events or one JSON Message) into a MessageResult.

Streamed and unary responses go through the same field readers, so the same message
folds to the same result either way. Nothing here raises on hostile input: bad events
are counted in `malformed_events` and skipped; unknown event/block types are data.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from clauditor.parsing.sse import SSEEvent
from clauditor.parsing.usage import Usage, apply_usage

__all__ = [
    "FoldSignal",
    "MessageResult",
    "StreamFold",
    "ToolUse",
    "Usage",
    "fold_message_json",
]

TEXT_CAP = 4000  # only summaries read `text`: keep the tail, bounded
MAX_TOOL_INPUT_BYTES = 16 * 1024 * 1024


@dataclass(slots=True)
class ToolUse:
    id: str
    name: str
    input: dict[str, Any] | None
    input_invalid: bool = False  # partial_json that did not parse to an object


@dataclass(slots=True)
class MessageResult:
    message_id: str | None = None
    model: str | None = None
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: Usage = field(default_factory=Usage)
    text: str = ""  # text blocks joined with "\n", last TEXT_CAP chars from a word start
    tool_uses: list[ToolUse] = field(default_factory=list)
    block_types: list[str] = field(default_factory=list)
    fallback_blocks: int = 0
    error_type: str | None = None
    error_message: str | None = None
    complete: bool = False
    streamed: bool = False
    events: int = 0
    unknown_events: int = 0
    unknown_event_types: list[str] = field(default_factory=list)  # the first few, by name
    malformed_events: int = 0

    @property
    def truncated(self) -> bool:
        """A stream that just stopped: no error event and no message_stop."""
        return self.streamed and self.error_type is None and not self.complete

    def comparable(self) -> dict[str, Any]:
        """The content of the result without transport counters (stream == unary)."""
        d = asdict(self)
        for key in (
            "streamed",
            "events",
            "unknown_events",
            "unknown_event_types",
            "malformed_events",
        ):
            del d[key]
        return d


@dataclass(frozen=True, slots=True)
class FoldSignal:
    kind: Literal[
        "message_start", "first_content", "tool_use", "message_delta", "message_stop", "error"
    ]
    tool_use: ToolUse | None = None


# -- field readers shared by the stream and unary paths -----------------------------------


def _opt_str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _parse_tool_input(raw: str) -> tuple[dict[str, Any] | None, bool]:
    try:
        v = json.loads(raw)
    except (ValueError, RecursionError):
        return None, True
    if isinstance(v, dict):
        return v, False
    return None, True


def _block_has_content(block: dict[str, Any]) -> bool:
    """A block start that already carries output (a tool_use id, non-empty text...)."""
    if block.get("type") == "fallback":
        return False  # a model switch marker, not output
    return any(v for k, v in block.items() if k not in ("type", "citations"))


def _tail(s: str) -> str:
    """The last TEXT_CAP chars of s, from the start of a word when that cut falls inside
    one: the summary never opens on the second half of a token whose shape (`sk-ant-`...)
    is gone, which no redaction rule could recognise."""
    if len(s) <= TEXT_CAP:
        return s
    tail = s[-TEXT_CAP:]
    if s[-TEXT_CAP - 1].isspace() or tail[0].isspace():
        return tail
    parts = tail.split(None, 1)
    return parts[1] if len(parts) == 2 else ""


class _TextAcc:
    """Text blocks joined with "\\n", keeping only the last TEXT_CAP chars (see _tail)."""

    __slots__ = ("_block_started", "_len", "_parts")

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._len = 0
        self._block_started = False  # current block already wrote text

    def new_block(self) -> None:
        self._block_started = False

    def add(self, s: str) -> None:
        if not s:
            return
        if not self._block_started:
            self._block_started = True
            if self._len:
                self._parts.append("\n")
                self._len += 1
        self._parts.append(s)
        self._len += len(s)
        if self._len > 4 * TEXT_CAP and len(self._parts) > 1:
            # One char more than kept: value() must see whether its cut splits a word.
            joined = "".join(self._parts)[-TEXT_CAP - 1 :]
            self._parts = [joined]
            self._len = len(joined)

    def value(self) -> str:
        if len(self._parts) > 1:
            self._parts = ["".join(self._parts)]
        return _tail(self._parts[0]) if self._parts else ""


def _set_error(r: MessageResult, err: Any) -> None:
    if isinstance(err, dict):
        r.error_type = _opt_str(err.get("type")) or "unknown_error"
        msg = err.get("message")
        r.error_message = msg[:1000] if isinstance(msg, str) else None
    else:
        r.error_type = "unknown_error"
        r.malformed_events += 1


UNKNOWN_NAMES_KEPT = 8


def _unknown_event(r: MessageResult, name: str | None) -> None:
    r.unknown_events += 1
    name = (name or "")[:64]
    if (
        name
        and name not in r.unknown_event_types
        and len(r.unknown_event_types) < UNKNOWN_NAMES_KEPT
    ):
        r.unknown_event_types.append(name)


def fold_message_json(obj: Any) -> MessageResult:
    """A non-streamed Message, or an error body {"type":"error","error":{...}}."""
    r = MessageResult()
    if not isinstance(obj, dict):
        r.malformed_events += 1
        return r
    typ = obj.get("type")
    if typ == "error" or (typ is None and "error" in obj and "content" not in obj):
        _set_error(r, obj.get("error"))
        return r
    content = obj.get("content")
    if typ not in (None, "message") or not isinstance(content, list):
        r.malformed_events += 1
        return r
    bad = False
    r.message_id = _opt_str(obj.get("id"))
    r.model = _opt_str(obj.get("model"))
    r.stop_reason = _opt_str(obj.get("stop_reason"))
    r.stop_sequence = _opt_str(obj.get("stop_sequence"))
    if not apply_usage(r.usage, obj.get("usage")):
        bad = True
    text = _TextAcc()
    for block in content:
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            bad = True
            continue
        btype = block["type"]
        r.block_types.append(btype)
        if btype == "text":
            text.new_block()
            t = block.get("text")
            if isinstance(t, str):
                text.add(t)
            else:
                bad = True
        elif btype == "tool_use":
            inp = block.get("input")
            ok_inp = isinstance(inp, dict)
            r.tool_uses.append(
                ToolUse(
                    id=_opt_str(block.get("id")) or "",
                    name=_opt_str(block.get("name")) or "",
                    input=inp if ok_inp else None,
                    input_invalid=not ok_inp,
                )
            )
        elif btype == "fallback":
            r.fallback_blocks += 1
    r.text = text.value()
    r.complete = True
    if bad:
        r.malformed_events += 1
    return r


# -- streaming ------------------------------------------------------------------------------


class _Block:
    __slots__ = ("id", "input", "json_len", "json_parts", "name", "too_big", "type")

    def __init__(self, btype: str, block: dict[str, Any]) -> None:
        self.type = btype
        self.id = ""
        self.name = ""
        self.input: Any = None
        self.json_parts: list[str] = []
        self.json_len = 0
        self.too_big = False
        if btype == "tool_use":
            self.id = _opt_str(block.get("id")) or ""
            self.name = _opt_str(block.get("name")) or ""
            self.input = block.get("input")


_STREAM_EVENTS = frozenset(
    {
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "ping",
        "error",
    }
)


class StreamFold:
    """Feed SSE events of one response in order; read `result` at any time."""

    def __init__(self) -> None:
        self._r = MessageResult(streamed=True)
        self._blocks: dict[int, _Block] = {}
        self._text = _TextAcc()
        self._first_content = False

    @property
    def result(self) -> MessageResult:
        self._r.text = self._text.value()
        return self._r

    def feed(self, event: SSEEvent) -> FoldSignal | None:
        r = self._r
        r.events += 1
        try:
            obj = json.loads(event.data)
        except (ValueError, RecursionError):
            if event.event in _STREAM_EVENTS or event.event == "message":
                r.malformed_events += 1
            else:
                _unknown_event(r, event.event)  # a new event type need not carry JSON
            return None
        if not isinstance(obj, dict):
            r.malformed_events += 1
            return None
        typ = obj.get("type")
        if not isinstance(typ, str):
            typ = event.event
        try:
            return self._handle(typ, obj)
        except Exception:  # safety net: a parser bug must not take the tap down
            r.malformed_events += 1
            return None

    def _handle(self, typ: str, obj: dict[str, Any]) -> FoldSignal | None:
        r = self._r
        if typ == "content_block_delta":
            return self._delta(obj)
        if typ == "ping":
            return None
        if typ == "content_block_start":
            return self._block_start(obj)
        if typ == "content_block_stop":
            return self._block_stop(obj)
        if typ == "message_delta":
            delta = obj.get("delta")
            bad = not apply_usage(r.usage, obj.get("usage"))
            if isinstance(delta, dict):
                sr = delta.get("stop_reason")
                if isinstance(sr, str):
                    r.stop_reason = sr
                elif sr is not None:
                    bad = True
                ss = delta.get("stop_sequence")
                if isinstance(ss, str):
                    r.stop_sequence = ss
                elif ss is not None:
                    bad = True
            elif delta is not None:
                bad = True
            if bad:
                r.malformed_events += 1
            return FoldSignal("message_delta")
        if typ == "message_start":
            msg = obj.get("message")
            if not isinstance(msg, dict):
                r.malformed_events += 1
                return None
            r.message_id = _opt_str(msg.get("id")) or r.message_id
            r.model = _opt_str(msg.get("model")) or r.model
            sr = msg.get("stop_reason")
            if isinstance(sr, str):
                r.stop_reason = sr
            if not apply_usage(r.usage, msg.get("usage")):
                r.malformed_events += 1
            return FoldSignal("message_start")
        if typ == "message_stop":
            r.complete = True
            return FoldSignal("message_stop")
        if typ == "error":
            _set_error(r, obj.get("error"))
            return FoldSignal("error")
        _unknown_event(r, typ)
        return None

    def _index(self, obj: dict[str, Any]) -> int | None:
        i = obj.get("index")
        return i if type(i) is int else None

    def _block_start(self, obj: dict[str, Any]) -> FoldSignal | None:
        r = self._r
        i = self._index(obj)
        block = obj.get("content_block")
        if i is None or not isinstance(block, dict) or not isinstance(block.get("type"), str):
            r.malformed_events += 1
            return None
        btype = block["type"]
        r.block_types.append(btype)
        self._blocks[i] = _Block(btype, block)
        if btype == "text":
            self._text.new_block()
            t = block.get("text")
            if isinstance(t, str):
                self._text.add(t)
        elif btype == "fallback":
            r.fallback_blocks += 1
        if not self._first_content and _block_has_content(block):
            self._first_content = True
            return FoldSignal("first_content")
        return None

    def _delta(self, obj: dict[str, Any]) -> FoldSignal | None:
        r = self._r
        i = self._index(obj)
        delta = obj.get("delta")
        blk = self._blocks.get(i) if i is not None else None
        if blk is None or not isinstance(delta, dict):
            r.malformed_events += 1
            return None
        dtype = delta.get("type")
        if dtype == "text_delta":
            t = delta.get("text")
            if not isinstance(t, str):
                r.malformed_events += 1
                return None
            if blk.type == "text":
                self._text.add(t)
        elif dtype == "input_json_delta":
            pj = delta.get("partial_json")
            if not isinstance(pj, str):
                r.malformed_events += 1
                return None
            if pj and not blk.too_big:
                blk.json_len += len(pj)
                if blk.json_len > MAX_TOOL_INPUT_BYTES:
                    blk.too_big = True
                    blk.json_parts = []
                else:
                    blk.json_parts.append(pj)
        # thinking/signature/citations and unknown deltas carry nothing we fold.
        if not self._first_content:
            self._first_content = True
            return FoldSignal("first_content")
        return None

    def _block_stop(self, obj: dict[str, Any]) -> FoldSignal | None:
        i = self._index(obj)
        blk = self._blocks.pop(i, None) if i is not None else None
        if blk is None:
            self._r.malformed_events += 1
            return None
        if blk.type != "tool_use":
            return None
        if blk.too_big:
            inp, invalid = None, True
        elif blk.json_parts:
            inp, invalid = _parse_tool_input("".join(blk.json_parts))
        elif isinstance(blk.input, dict):
            inp, invalid = blk.input, False  # no deltas: the start carried the input
        else:
            inp, invalid = None, True
        tu = ToolUse(id=blk.id, name=blk.name, input=inp, input_invalid=invalid)
        self._r.tool_uses.append(tu)
        return FoldSignal("tool_use", tu)
