"""A fake Anthropic Messages API server for tests.

Raw asyncio instead of a web framework so tests control every byte on the wire: HTTP/1.1
keep-alive, one HTTP chunk per SSE event (or grouped / split mid-event), delays between
events, mid-stream errors, truncated streams, gzip and plain garbage.

Replies come from a per-session script (`FakeUpstream.script`) or, when none is queued,
from a default policy driven by the newest user message:

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
session against the real proxy; `Exchange.message` is the message a 200 reply carried.

Usage is deterministic: prompt tokens ≈ len(body) // 4 and prompt caching is simulated per
(session, model): the first request writes ~90% of the prompt to the cache, later ones
read what was written and write ~90% of the growth.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import gzip as gzip_lib
import hashlib
import http
import itertools
import json
import random
import string
import threading
import time
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ERROR_TYPES",
    "Exchange",
    "FakeUpstream",
    "Reply",
    "ToolCall",
    "parse_directives",
    "render_reply",
]

_ALNUM = string.ascii_letters + string.digits
_rng = random.SystemRandom()

ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_ERROR_MESSAGES: dict[str, str] = {
    "invalid_request_error": "Invalid request",
    "authentication_error": "invalid x-api-key",
    "billing_error": "Your credit balance is too low",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "Not found",
    "request_too_large": "Request exceeds the maximum allowed number of bytes.",
    "rate_limit_error": "This request would exceed your rate limit.",
    "api_error": "Internal server error",
    "timeout_error": "Request timed out",
    "overloaded_error": "Overloaded",
}

COMPACT_MARKER = "CRITICAL: Respond with TEXT ONLY"
_MAX_BODY = 64 * 1024 * 1024
_MAX_CHUNKS = 1_000_000  # bound on request-body chunks, against a malicious peer
_TEXT_BLOCK_TYPES = ("text",)


def _rand(n: int) -> str:
    return "".join(_rng.choice(_ALNUM) for _ in range(n))


def new_tool_use_id() -> str:
    return "toolu_01" + _rand(22)


def new_message_id() -> str:
    return "msg_01" + _rand(22)


def new_request_id() -> str:
    return "req_011C" + _rand(20)


def _compact_json(obj: Any) -> str:
    # Anthropic sends compact JSON with raw (unescaped) UTF-8.
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


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


@dataclass
class Exchange:
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    status: int = 0
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    response_bytes: bytes = b""  # body bytes as written (de-chunked, still gzipped if gzip)
    session_id: str | None = None
    request_id: str = ""
    started: float = 0.0
    ended: float = 0.0
    conn_id: int = 0  # one id per TCP connection, to check keep-alive reuse
    peer_port: int = 0
    events_sent: int = 0  # SSE events fully written
    complete: bool = False  # the response was written to its end
    stream: bool = False
    reply: Reply | None = None
    message: dict[str, Any] | None = None
    http_version: str = "HTTP/1.1"  # the unary form of the message a 200 reply sent

    def header(self, name: str) -> str | None:
        """First request header with this name, case-insensitively."""
        low = name.lower()
        return next((v for k, v in self.headers if k.lower() == low), None)

    def response_header(self, name: str) -> str | None:
        low = name.lower()
        return next((v for k, v in self.response_headers if k.lower() == low), None)

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def decoded_response(self) -> bytes:
        """response_bytes with any gzip content-encoding undone."""
        if self.response_header("content-encoding") == "gzip":
            # A truncated gzip stream still yields what was complete.
            return zlib.decompressobj(wbits=31).decompress(self.response_bytes)
        return self.response_bytes


@dataclass
class _Request:
    method: str
    path: str
    query: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        low = name.lower()
        return next((v for k, v in self.headers if k.lower() == low), None)


class _BadRequest(Exception):
    pass


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


def _iter_cache_controls(obj: Any, depth: int = 0) -> Iterator[dict[str, Any]]:
    if depth > 64:  # request JSON is attacker-shaped in principle; keep recursion bounded
        return
    if isinstance(obj, dict):
        cc = obj.get("cache_control")
        if isinstance(cc, dict):
            yield cc
        for v in obj.values():
            yield from _iter_cache_controls(v, depth + 1)
    elif isinstance(obj, list):
        for v in obj:
            yield from _iter_cache_controls(v, depth + 1)


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


def _sse(name: str, data: dict[str, Any], crlf: bool = False) -> bytes:
    nl = "\r\n" if crlf else "\n"
    return f"event: {name}{nl}data: {_compact_json(data)}{nl}{nl}".encode()


def _error_body(error_type: str, request_id: str, message: str | None = None) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": error_type, "message": message or _ERROR_MESSAGES.get(error_type, "")},
        "request_id": request_id,
    }


def _reason(status: int) -> str:
    if status == 529:
        return "Site Overloaded"
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


# ---------------------------------------------------------------- message plan


@dataclass
class _Plan:
    message_id: str
    model: str
    blocks: list[dict[str, Any]]  # final content blocks (the unary form)
    stop_reason: str
    usage: dict[str, Any]  # final usage (cumulative)
    overrides: dict[str, Any]


def _plan_message(reply: Reply, request_model: str, usage: dict[str, Any]) -> _Plan:
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
        + (len(_compact_json(b["input"])) if b["type"] == "tool_use" else 0)
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
    return _Plan(new_message_id(), reply.model or request_model, blocks, stop, final, overrides)


def _unary_message(plan: _Plan) -> dict[str, Any]:
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


def _sse_events(plan: _Plan, reply: Reply) -> list[tuple[str, dict[str, Any]]]:
    if reply.start_usage is not None:
        start_usage = dict(reply.start_usage)
    else:
        start_usage = dict(plan.usage)
        start_usage["output_tokens"] = 1
    message = _unary_message(plan)
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
            for piece in _split(_compact_json(block["input"]), 3):
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


def _stream_events(plan: _Plan, reply: Reply) -> tuple[list[bytes], bool]:
    """The SSE events of a reply as written, and whether the stream is then cut off."""
    if reply.garbage is not None:
        return [reply.garbage], False
    events = [_sse(name, data, reply.crlf) for name, data in _sse_events(plan, reply)]
    if reply.sse_error_after is not None:
        sse_err = _error_body("overloaded_error", "")
        del sse_err["request_id"]  # the in-stream error event carries none
        return [*events[: reply.sse_error_after], _sse("error", sse_err, reply.crlf)], False
    if reply.truncate_after is not None:
        return events[: reply.truncate_after], True
    return events, False


def render_reply(
    reply: Reply, request_model: str, *, stream: bool, request_id: str = ""
) -> tuple[int, str, bytes]:
    """(status, content type, body) the server would send for reply, with reply.usage taken
    as the whole usage (no simulated cache): to feed a parser the bytes of a recorded
    response without a socket. Chunking, delays and gzip are left out."""
    if reply.status != 200:
        etype = reply.error_type or ERROR_TYPES.get(reply.status, "api_error")
        body = _compact_json(_error_body(etype, request_id)).encode()
        return reply.status, "application/json", body
    plan = _plan_message(reply, request_model, {})
    if not stream:
        return 200, "application/json", _compact_json(_unary_message(plan)).encode()
    events, _ = _stream_events(plan, reply)
    return 200, "text/event-stream; charset=utf-8", b"".join(events)


# ---------------------------------------------------------------- server


class FakeUpstream:
    """Fake Anthropic API on a loopback port. See the module docstring for the policy."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        default_event_delay: float = 0.0,
        idle_timeout: float = 60.0,
        max_requests_per_connection: int = 10_000,
    ) -> None:
        self.host = host
        self.port = port
        self.default_event_delay = default_event_delay
        self.idle_timeout = idle_timeout  # keep-alive connections idle longer are closed
        self.max_requests_per_connection = max_requests_per_connection
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._exchanges: list[Exchange] = []
        self._scripts: dict[str, deque[Reply]] = {}
        self._cache: dict[tuple[str, str], int] = {}  # (session, model) → cached prefix tokens
        self._seen: dict[tuple[str, str], int] = {}  # (session, body sha) → sightings
        self._session_requests: dict[str, int] = {}
        self._server: asyncio.AbstractServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._conn_ids = itertools.count(1)

    # ------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._server = await asyncio.start_server(
            self._handle_connection, self.host, self.port, limit=1 << 20
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 5)

    async def __aenter__(self) -> FakeUpstream:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @contextlib.contextmanager
    def running_in_thread(self) -> Iterator[FakeUpstream]:
        """Serve from a daemon thread with its own loop, for synchronous tests."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="fake-upstream", daemon=True)
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.start(), loop).result(timeout=10)
            yield self
        finally:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self.stop(), loop).result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            if not thread.is_alive():
                loop.close()

    # ------------------------------------------------------------ scripting and records

    def script(self, session_id: str, replies: list[Reply]) -> None:
        """Queue replies for a session ("*" = any session without its own queue)."""
        with self._lock:
            self._scripts.setdefault(session_id, deque()).extend(replies)

    def reset(self) -> None:
        """Forget exchanges, scripts and the simulated cache."""
        with self._lock:
            self._exchanges.clear()
            self._scripts.clear()
            self._cache.clear()
            self._seen.clear()
            self._session_requests.clear()

    @property
    def exchanges(self) -> list[Exchange]:
        """Snapshot of the finished exchanges, in completion order."""
        with self._lock:
            return list(self._exchanges)

    def wait_for(self, n: int, timeout: float) -> list[Exchange]:
        """Block until n exchanges are recorded; TimeoutError otherwise. Not on the server loop."""
        on_loop = self._loop_thread == threading.get_ident()
        if on_loop and self._loop is not None and self._loop.is_running():
            raise RuntimeError("wait_for would block the server's loop; use wait_for_async")
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._exchanges) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self._exchanges)} of {n} exchanges after {timeout}s")
                self._cond.wait(left)
            return list(self._exchanges)

    async def wait_for_async(self, n: int, timeout: float) -> list[Exchange]:
        """wait_for for code running on the server's own loop."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if len(self._exchanges) >= n:
                    return list(self._exchanges)
                have = len(self._exchanges)
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{have} of {n} exchanges after {timeout}s")
            await asyncio.sleep(0.005)

    def _record(self, ex: Exchange) -> None:
        with self._cond:
            self._exchanges.append(ex)
            self._cond.notify_all()

    # ------------------------------------------------------------ HTTP

    async def _handle_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        conn_id = next(self._conn_ids)
        peer = writer.get_extra_info("peername")
        peer_port = peer[1] if isinstance(peer, tuple) and len(peer) >= 2 else 0
        try:
            for _ in range(self.max_requests_per_connection):
                try:
                    req = await self._read_request(reader, writer)
                except _BadRequest as e:
                    await self._write_simple(writer, 400, str(e))
                    break
                if req is None:
                    break
                if not await self._respond(req, writer, conn_id, peer_port):
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            pass
        except asyncio.CancelledError:
            # stop() cancels us; ending normally keeps asyncio's stream callback from
            # logging the cancellation as an unhandled error.
            pass
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)

    async def _read_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> _Request | None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.idle_timeout)
        except asyncio.IncompleteReadError as e:
            if e.partial.strip():
                raise _BadRequest("incomplete request head") from None
            return None
        except asyncio.LimitOverrunError:
            raise _BadRequest("request head too large") from None
        except asyncio.TimeoutError:
            return None
        lines = head[:-4].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _BadRequest(f"bad request line: {lines[0][:80]!r}")
        method, target, version = parts
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise _BadRequest(f"bad header line: {line[:80]!r}")
            headers.append((name, value.strip()))
        path, _, query = target.partition("?")
        req = _Request(method, path, query, version, headers)
        if (req.header("expect") or "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        req.body = await asyncio.wait_for(self._read_body(reader, req), self.idle_timeout)
        return req

    async def _read_body(self, reader: asyncio.StreamReader, req: _Request) -> bytes:
        te = (req.header("transfer-encoding") or "").lower()
        if "chunked" in te:
            parts: list[bytes] = []
            total = 0
            for _ in range(_MAX_CHUNKS):
                line = await reader.readuntil(b"\r\n")
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise _BadRequest("bad chunk size") from None
                if size == 0:
                    # Trailers, up to the blank line.
                    for _ in range(1000):
                        if await reader.readuntil(b"\r\n") == b"\r\n":
                            break
                    return b"".join(parts)
                total += size
                if total > _MAX_BODY:
                    raise _BadRequest("body too large")
                parts.append(await reader.readexactly(size))
                if await reader.readexactly(2) != b"\r\n":
                    raise _BadRequest("bad chunk terminator")
            raise _BadRequest("too many chunks")
        cl = req.header("content-length")
        if cl is None:
            return b""
        try:
            n = int(cl)
        except ValueError:
            raise _BadRequest("bad content-length") from None
        if n < 0 or n > _MAX_BODY:
            raise _BadRequest("bad content-length")
        return await reader.readexactly(n)

    @staticmethod
    def _wants_keep_alive(req: _Request) -> bool:
        conn = (req.header("connection") or "").lower()
        if req.version == "HTTP/1.0":
            return "keep-alive" in conn
        return "close" not in conn

    def _base_headers(self, request_id: str, keep_alive: bool) -> list[tuple[str, str]]:
        return [
            ("date", email.utils.formatdate(usegmt=True)),
            ("connection", "keep-alive" if keep_alive else "close"),
            ("request-id", request_id),
        ]

    @staticmethod
    def _head_bytes(status: int, headers: list[tuple[str, str]]) -> bytes:
        lines = [f"HTTP/1.1 {status} {_reason(status)}"]
        lines += [f"{k}: {v}" for k, v in headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _write_simple(self, writer: asyncio.StreamWriter, status: int, message: str) -> None:
        body = _compact_json(_error_body(ERROR_TYPES.get(status, "api_error"), "", message))
        data = body.encode()
        head = [
            ("content-type", "application/json"),
            ("content-length", str(len(data))),
            ("connection", "close"),
        ]
        with contextlib.suppress(ConnectionError):
            writer.write(self._head_bytes(status, head) + data)
            await writer.drain()

    async def _respond(
        self, req: _Request, writer: asyncio.StreamWriter, conn_id: int, peer_port: int
    ) -> bool:
        """Serve one request; True when the connection may carry another."""
        ex = Exchange(
            method=req.method,
            path=req.path,
            query=req.query,
            headers=req.headers,
            body=req.body,
            request_id=new_request_id(),
            started=time.monotonic(),
            conn_id=conn_id,
            peer_port=peer_port,
            http_version=req.version,
        )
        keep_alive = self._wants_keep_alive(req)
        try:
            if req.method == "POST" and req.path == "/v1/messages":
                await self._serve_messages(req, ex, writer, keep_alive)
            else:
                body = _error_body("not_found_error", ex.request_id, f"Not found: {req.path}")
                await self._write_unary(
                    writer,
                    ex,
                    404,
                    _compact_json(body).encode(),
                    keep_alive,
                    head_only=req.method == "HEAD",
                )
        except (ConnectionError, asyncio.IncompleteReadError):
            ex.complete = False
        finally:
            ex.ended = time.monotonic()
            self._record(ex)
        return keep_alive and ex.complete

    async def _write_unary(
        self,
        writer: asyncio.StreamWriter,
        ex: Exchange,
        status: int,
        body: bytes,
        keep_alive: bool,
        *,
        content_type: str = "application/json",
        extra: dict[str, str] | None = None,
        gzip: bool = False,
        head_only: bool = False,
    ) -> None:
        if gzip:
            body = gzip_lib.compress(body, mtime=0)
        headers = self._base_headers(ex.request_id, keep_alive)
        headers[1:1] = [("content-type", content_type), ("content-length", str(len(body)))]
        if gzip:
            headers.append(("content-encoding", "gzip"))
        headers += list((extra or {}).items())
        ex.status = status
        ex.response_headers = headers
        writer.write(self._head_bytes(status, headers))
        if not head_only:
            writer.write(body)
            ex.response_bytes = body
        await writer.drain()
        ex.complete = True

    # ------------------------------------------------------------ /v1/messages

    async def _serve_messages(
        self, req: _Request, ex: Exchange, writer: asyncio.StreamWriter, keep_alive: bool
    ) -> None:
        try:
            payload = json.loads(req.body)
            if not isinstance(payload, dict):
                raise ValueError("body is not an object")
        except ValueError as e:
            body = _error_body("invalid_request_error", ex.request_id, f"Invalid JSON body: {e}")
            await self._write_unary(writer, ex, 400, _compact_json(body).encode(), keep_alive)
            return
        session = self._session_of(req, payload)
        ex.session_id = session
        stream = payload.get("stream") is True
        ex.stream = stream
        key = session or ""
        digest = hashlib.sha256(req.body).hexdigest()
        with self._lock:
            # n: this request's number within its session; seen: sightings of these bytes.
            n = self._session_requests[key] = self._session_requests.get(key, 0) + 1
            seen = self._seen[(key, digest)] = self._seen.get((key, digest), 0) + 1
        reply = self._next_scripted(session) or self._default_reply(payload, n, seen, stream)
        ex.reply = reply

        if reply.status != 200:
            etype = reply.error_type or ERROR_TYPES.get(reply.status, "api_error")
            err = _compact_json(_error_body(etype, ex.request_id)).encode()
            if reply.garbage is not None:
                err = reply.garbage
            await self._write_unary(
                writer, ex, reply.status, err, keep_alive, extra=reply.headers, gzip=reply.gzip
            )
            return

        model = str(payload.get("model") or "claude-opus-4-8")
        usage = self._simulate_usage(session, model, payload, req.body)
        plan = _plan_message(reply, model, usage)
        ex.message = _unary_message(plan)
        if not stream:
            data = (
                reply.garbage
                if reply.garbage is not None
                else _compact_json(_unary_message(plan)).encode()
            )
            await self._write_unary(
                writer, ex, 200, data, keep_alive, extra=reply.headers, gzip=reply.gzip
            )
            return
        events, truncate = _stream_events(plan, reply)
        await self._write_sse(writer, ex, reply, events, keep_alive, truncate)

    async def _write_sse(
        self,
        writer: asyncio.StreamWriter,
        ex: Exchange,
        reply: Reply,
        events: list[bytes],
        keep_alive: bool,
        truncate: bool,
    ) -> None:
        headers = self._base_headers(ex.request_id, keep_alive and not truncate)
        headers[1:1] = [
            ("content-type", "text/event-stream; charset=utf-8"),
            ("transfer-encoding", "chunked"),
            ("cache-control", "no-cache"),
        ]
        if reply.gzip:
            headers.append(("content-encoding", "gzip"))
        headers += list(reply.headers.items())
        ex.status = 200
        ex.response_headers = headers
        writer.write(self._head_bytes(200, headers))

        # Cumulative end offset of each event, to count events fully written.
        ends = list(itertools.accumulate(len(e) for e in events))
        stream = b"".join(events)
        if reply.chunk_size:
            size = max(1, reply.chunk_size)
            pieces = [stream[i : i + size] for i in range(0, len(stream), size)]
        else:
            per = max(1, reply.events_per_chunk)
            pieces = [b"".join(events[i : i + per]) for i in range(0, len(events), per)]

        delay = reply.event_delay or self.default_event_delay
        comp = zlib.compressobj(wbits=31) if reply.gzip else None  # gzip framing
        written = 0
        sent = bytearray()
        # Paced on a fixed schedule, as a remote server's clock is: a slow proxy or a busy
        # CPU here delays the bytes, never the schedule of the events after them.
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            for i, piece in enumerate(pieces):
                if i and delay > 0:
                    await asyncio.sleep(max(0.0, start + i * delay - loop.time()))
                # Sync-flush so every chunk is decodable on arrival.
                data = comp.compress(piece) + comp.flush(zlib.Z_SYNC_FLUSH) if comp else piece
                if data:
                    writer.write(b"%x\r\n%b\r\n" % (len(data), data))
                    sent += data
                await writer.drain()
                written += len(piece)
                ex.events_sent = sum(1 for e in ends if e <= written)
            if truncate:
                # Abort without the terminating chunk: the client sees a reset stream.
                transport = writer.transport
                transport.abort()
                ex.complete = False
                return
            if comp:
                tail = comp.flush()
                writer.write(b"%x\r\n%b\r\n" % (len(tail), tail))
                sent += tail
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            ex.complete = True
        finally:
            ex.response_bytes = bytes(sent)

    # ------------------------------------------------------------ policy

    @staticmethod
    def _session_of(req: _Request, payload: dict[str, Any]) -> str | None:
        sid = req.header("x-claude-code-session-id")
        if sid:
            return sid
        meta = payload.get("metadata")
        user_id = meta.get("user_id") if isinstance(meta, dict) else None
        if isinstance(user_id, str):
            with contextlib.suppress(ValueError):
                parsed = json.loads(user_id)
                found = parsed.get("session_id") if isinstance(parsed, dict) else None
                if isinstance(found, str):
                    return found
        return None

    def _next_scripted(self, session: str | None) -> Reply | None:
        with self._lock:
            for key in (session or "", "*"):
                queue = self._scripts.get(key)
                if queue:
                    return queue.popleft()
        return None

    def _simulate_usage(
        self, session: str | None, model: str, payload: dict[str, Any], body: bytes
    ) -> dict[str, Any]:
        estimate = max(1, len(body) // 4)
        marks = list(_iter_cache_controls(payload))
        if not marks:
            read = write = 0
            fresh = estimate
        else:
            key = (session or "", model)
            with self._lock:
                read = min(self._cache.get(key, 0), estimate)
                growth = estimate - read
                write = growth * 9 // 10
                fresh = growth - write
                self._cache[key] = read + write
        one_hour = any(m.get("ttl") == "1h" for m in marks)
        return {
            "input_tokens": fresh,
            "cache_creation_input_tokens": write,
            "cache_read_input_tokens": read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": 0 if one_hour else write,
                "ephemeral_1h_input_tokens": write if one_hour else 0,
            },
            "output_tokens": 1,
            "service_tier": "standard",
        }

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
