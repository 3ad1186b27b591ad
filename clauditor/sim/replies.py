"""What the fake upstream answers: a `Reply`, from a per-session script or, when none is
queued, from a default policy driven by the newest user message:

- tool_result blocks → text "Done: <n> tool result(s) received."
- `[[fake:tool NAME JSON]]` (repeatable) → tool_use blocks
- `[[fake:status 529]]` / `[[fake:status 529 2]]` → that error (the second form only for
  the first 2 sightings of a byte-identical request, so retries then succeed)
- `[[fake:overload MODEL]]` → 529 for every request whose model starts with MODEL, so that
  Claude Code's `--fallback-model` switches and the other model then succeeds
- otherwise a short text reply.

Modifiers that combine with any of the above: `[[fake:delay 0.05]]` (seconds between SSE
events), `[[fake:model NAME]]` (response model), `[[fake:sse_error N]]` and
`[[fake:truncate N]]` (first sighting of a byte-identical streaming request only, so that
Claude Code's resend succeeds). Title side calls (`output_config.format`) get a JSON title
and compaction requests (`CRITICAL: Respond with TEXT ONLY`) get a summary in
`<analysis>`/`<summary>` tags, or a plain-text one when the compaction instruction carries
`[[fake:compact untagged]]` (e.g. `claude -p "/compact [[fake:compact untagged]]"`: the
arguments of `/compact` land in the instruction).

`Reply.from_record(response)` rebuilds the reply a fixture line's `response` describes
(status, model, content blocks with their ids, usage, SSE error point), to replay a captured
session against the real proxy.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "COMPACT_MARKER",
    "Reply",
    "ReplyPolicy",
    "ToolCall",
    "parse_directives",
    "session_of",
]

COMPACT_MARKER = "CRITICAL: Respond with TEXT ONLY"
_TEXT_BLOCK_TYPES = ("text",)


@dataclass
class ToolCall:
    name: str
    input: dict[str, Any]
    id: str | None = None  # auto: "toolu_01" + 22 random alphanumerics


@dataclass
class Reply:
    text: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    thinking: str | None = None
    model: str | None = None  # default: the request's model
    stop_reason: str | None = None  # default: tool_use when tool_calls, else end_turn
    status: int = 200
    error_type: str | None = None  # for status != 200; default from ERROR_TYPES
    sse_error_after: int | None = None  # `event: error` after N events, then a clean end
    truncate_after: int | None = None  # close the connection after N events
    usage: dict[str, Any] | None = None  # field overrides, cache_creation merged key-wise
    headers: dict[str, str] = field(default_factory=dict)
    event_delay: float = 0.0  # 0 → the server's default_event_delay
    fallback_block: bool = False
    text_chunks: int = 3
    garbage: bytes | None = None
    gzip: bool = False
    # Extensions beyond the brief, for SSE-parser tests:
    events_per_chunk: int = 1  # SSE events per HTTP chunk
    chunk_size: int | None = None  # re-cut the SSE byte stream into chunks of this size
    crlf: bool = False  # end SSE lines with \r\n
    # Exact content blocks (ids included), in place of text/thinking/tool_calls.
    content: list[dict[str, Any]] | None = None
    start_usage: dict[str, Any] | None = None  # message_start usage as is (default: final, 1 out)

    @classmethod
    def from_record(cls, response: dict[str, Any]) -> Reply:
        """The reply a recorded fixture `response` describes, content and usage exactly.

        Recorded usage is taken whole (no simulated cache); `kind: sse_error` errors after
        `sse_error_after_events` events, `kind: truncated` closes after `events_sent`, and
        such a cut stream's message_start carries the recorded usage as it is: what the
        aborted attempt reported.
        """
        status = int(response.get("status", 200))
        if status != 200:
            return cls(status=status, error_type=response.get("error_type"))
        reply = cls(
            content=[dict(b) for b in response.get("content") or []],
            model=response.get("model"),
            stop_reason=response.get("stop_reason"),
            usage=dict(response.get("usage") or {}),
        )
        if response.get("kind") == "sse_error":
            reply.sse_error_after = int(response.get("sse_error_after_events") or 0)
        elif response.get("kind") == "truncated":
            reply.truncate_after = int(response.get("events_sent") or 0)
        if reply.sse_error_after is not None or reply.truncate_after is not None:
            reply.start_usage = dict(reply.usage or {})
        return reply


# ---------------------------------------------------------------- directives


def parse_directives(text: str) -> list[tuple[str, str, Any]]:
    """`[[fake:KIND ARGS]]` directives in text, as (kind, args, parsed tool input or None).

    The tool form is `[[fake:tool NAME JSON]]`; the JSON object is decoded with raw_decode
    so it may itself contain `]]`.
    """
    out: list[tuple[str, str, Any]] = []
    pos = 0
    decoder = json.JSONDecoder()
    for _ in range(len(text)):  # each iteration advances pos; bounded by the text length
        start = text.find("[[fake:", pos)
        if start < 0:
            break
        i = start + len("[[fake:")
        j = i
        while j < len(text) and (text[j].isalnum() or text[j] == "_"):
            j += 1
        kind = text[i:j]
        if kind == "tool":
            k = j
            while k < len(text) and text[k].isspace():
                k += 1
            n = k
            while n < len(text) and not text[n].isspace() and text[n] != "]":
                n += 1
            name = text[k:n]
            while n < len(text) and text[n].isspace():
                n += 1
            tool_input: Any = {}
            if not text.startswith("]]", n):
                try:
                    tool_input, n = decoder.raw_decode(text, n)
                except json.JSONDecodeError:
                    pos = j
                    continue
                while n < len(text) and text[n].isspace():
                    n += 1
            if not text.startswith("]]", n) or not name or not isinstance(tool_input, dict):
                pos = j
                continue
            out.append(("tool", name, tool_input))
            pos = n + 2
        else:
            end = text.find("]]", j)
            if end < 0:
                break
            out.append((kind, text[j:end].strip(), None))
            pos = end + 2
    return out


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [b for b in content if isinstance(b, dict)]
    return []


def session_of(session_header: str | None, payload: dict[str, Any]) -> str | None:
    """The request's session: its X-Claude-Code-Session-Id, else metadata.user_id's."""
    if session_header:
        return session_header
    meta = payload.get("metadata")
    user_id = meta.get("user_id") if isinstance(meta, dict) else None
    if isinstance(user_id, str):
        with contextlib.suppress(ValueError):
            parsed = json.loads(user_id)
            found = parsed.get("session_id") if isinstance(parsed, dict) else None
            if isinstance(found, str):
                return found
    return None


# ---------------------------------------------------------------- policy


class ReplyPolicy:
    """The reply to each request: the session's script first, else the default policy
    (see the module docstring). Counts requests per session and sightings of identical
    bodies, which directives such as `status 529 2` depend on; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[Reply]] = {}
        self._seen: dict[tuple[str, str], int] = {}  # (session, body sha) → sightings
        self._session_requests: dict[str, int] = {}

    def script(self, session_id: str, replies: list[Reply]) -> None:
        """Queue replies for a session ("*" = any session without its own queue)."""
        with self._lock:
            self._scripts.setdefault(session_id, deque()).extend(replies)

    def reset(self) -> None:
        with self._lock:
            self._scripts.clear()
            self._seen.clear()
            self._session_requests.clear()

    def reply(
        self, session: str | None, body: bytes, payload: dict[str, Any], stream: bool
    ) -> Reply:
        key = session or ""
        digest = hashlib.sha256(body).hexdigest()
        with self._lock:
            # n: this request's number within its session; seen: sightings of these bytes.
            n = self._session_requests[key] = self._session_requests.get(key, 0) + 1
            seen = self._seen[(key, digest)] = self._seen.get((key, digest), 0) + 1
        return self._next_scripted(session) or self._default_reply(payload, n, seen, stream)

    def _next_scripted(self, session: str | None) -> Reply | None:
        with self._lock:
            for key in (session or "", "*"):
                queue = self._scripts.get(key)
                if queue:
                    return queue.popleft()
        return None

    def _default_reply(self, payload: dict[str, Any], n: int, seen: int, stream: bool) -> Reply:
        messages = payload.get("messages")
        messages = messages if isinstance(messages, list) else []
        last_user = next(
            (m for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"), None
        )
        blocks = _blocks(last_user.get("content")) if last_user else []
        results = [b for b in blocks if b.get("type") == "tool_result"]
        text = "\n".join(
            str(b.get("text", "")) for b in blocks if b.get("type") in _TEXT_BLOCK_TYPES
        )
        directives = parse_directives(text)
        output_config = payload.get("output_config")
        fmt = output_config.get("format") if isinstance(output_config, dict) else None

        reply: Reply
        status = next((args for kind, args, _ in directives if kind == "status"), None)
        tools = [ToolCall(args, inp) for kind, args, inp in directives if kind == "tool"]
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            reply = Reply(text='{"title": "Fake session title"}')
        elif COMPACT_MARKER in text:
            if any(kind == "compact" and args == "untagged" for kind, args, _ in directives):
                reply = Reply(text="Summary: the user worked with the fake upstream.")
            else:
                reply = Reply(
                    text="<analysis>fake analysis</analysis>\n<summary>1. Primary Request: "
                    "the user worked with the fake upstream.</summary>"
                )
        elif self._overloaded(payload, messages):
            reply = Reply(status=529)
        elif results:
            reply = Reply(text=f"Done: {len(results)} tool result(s) received.")
        elif tools:
            reply = Reply(text="I'll run that for you.", tool_calls=tools)
        elif status is not None and self._status_applies(status, seen):
            reply = Reply(status=int(status.split()[0]))
        else:
            reply = Reply(text=f"Hello from the fake upstream (request {n}).")

        # delay/model follow the turn's prompt into its tool rounds; error modifiers do not.
        for kind, args, _ in self._turn_modifiers(messages, directives):
            try:
                if kind == "delay":
                    reply.event_delay = float(args)
                elif kind == "model" and args:
                    reply.model = args
                elif kind == "sse_error" and stream and seen == 1:
                    reply.sse_error_after = int(args)
                elif kind == "truncate" and stream and seen == 1:
                    reply.truncate_after = int(args)
            except ValueError:
                continue  # a malformed directive is just text
        return reply

    @staticmethod
    def _turn_modifiers(
        messages: list[Any], directives: list[tuple[str, str, Any]]
    ) -> list[tuple[str, str, Any]]:
        prompt: list[tuple[str, str, Any]] = []
        for m in reversed(messages):
            if not isinstance(m, dict) or m.get("role") != "user":
                continue
            texts = [
                str(b.get("text", "")) for b in _blocks(m.get("content")) if b.get("type") == "text"
            ]
            if texts:
                prompt = [
                    d for d in parse_directives("\n".join(texts)) if d[0] in ("delay", "model")
                ]
                break
        newest = [d for d in directives if d[0] not in ("delay", "model")]
        return prompt + newest

    @staticmethod
    def _overloaded(payload: dict[str, Any], messages: list[Any]) -> bool:
        """`[[fake:overload MODEL]]` in any user text, and the request is on that model."""
        model = str(payload.get("model") or "")
        for m in messages:
            if not isinstance(m, dict) or m.get("role") != "user":
                continue
            for b in _blocks(m.get("content")):
                if b.get("type") != "text" or "[[fake:overload" not in str(b.get("text", "")):
                    continue
                for kind, args, _ in parse_directives(str(b.get("text", ""))):
                    if kind == "overload" and args and model.startswith(args):
                        return True
        return False

    @staticmethod
    def _status_applies(args: str, seen: int) -> bool:
        parts = args.split()
        try:
            int(parts[0])
            limit = int(parts[1]) if len(parts) > 1 else None
        except (ValueError, IndexError):
            return False
        return limit is None or seen <= limit
