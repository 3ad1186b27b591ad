"""The fake upstream's bytes: Anthropic's error bodies, SSE event framing (LF or CRLF), the
cuts of a stream (an `error` event, or a truncation without the terminating chunk), and
writing a response: unary JSON (gzip on request) or a chunked event stream, one HTTP
chunk per event, per group of events or per fixed byte count, gzip sync-flushed per chunk,
paced on a fixed schedule. Each writer fills the response side of the `Exchange`."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import gzip as gzip_lib
import itertools
import zlib
from typing import Any

from clauditor.sim.exchange import Exchange
from clauditor.sim.http1 import head_bytes
from clauditor.sim.message import MessagePlan, compact_json, plan_message, sse_events, unary_message
from clauditor.sim.replies import Reply

__all__ = [
    "ERROR_TYPES",
    "error_body",
    "error_bytes",
    "render_reply",
    "stream_events",
    "write_simple",
    "write_sse",
    "write_unary",
]

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


def error_body(error_type: str, request_id: str, message: str | None = None) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": error_type, "message": message or _ERROR_MESSAGES.get(error_type, "")},
        "request_id": request_id,
    }


def error_bytes(reply: Reply, request_id: str) -> bytes:
    """The JSON error body of a non-200 reply."""
    etype = reply.error_type or ERROR_TYPES.get(reply.status, "api_error")
    return compact_json(error_body(etype, request_id)).encode()


def _sse(name: str, data: dict[str, Any], crlf: bool = False) -> bytes:
    nl = "\r\n" if crlf else "\n"
    return f"event: {name}{nl}data: {compact_json(data)}{nl}{nl}".encode()


def stream_events(plan: MessagePlan, reply: Reply) -> tuple[list[bytes], bool]:
    """The SSE events of a reply as written, and whether the stream is then cut off."""
    if reply.garbage is not None:
        return [reply.garbage], False
    events = [_sse(name, data, reply.crlf) for name, data in sse_events(plan, reply)]
    if reply.sse_error_after is not None:
        sse_err = error_body("overloaded_error", "")
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
        return reply.status, "application/json", error_bytes(reply, request_id)
    plan = plan_message(reply, request_model, {})
    if not stream:
        return 200, "application/json", compact_json(unary_message(plan)).encode()
    events, _ = stream_events(plan, reply)
    return 200, "text/event-stream; charset=utf-8", b"".join(events)


# ---------------------------------------------------------------- writing a response


def _base_headers(request_id: str, keep_alive: bool) -> list[tuple[str, str]]:
    return [
        ("date", email.utils.formatdate(usegmt=True)),
        ("connection", "keep-alive" if keep_alive else "close"),
        ("request-id", request_id),
    ]


async def write_simple(writer: asyncio.StreamWriter, status: int, message: str) -> None:
    """An error for a request that could not be read (no exchange), then close."""
    body = compact_json(error_body(ERROR_TYPES.get(status, "api_error"), "", message))
    data = body.encode()
    head = [
        ("content-type", "application/json"),
        ("content-length", str(len(data))),
        ("connection", "close"),
    ]
    with contextlib.suppress(ConnectionError):
        writer.write(head_bytes(status, head) + data)
        await writer.drain()


async def write_unary(
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
    headers = _base_headers(ex.request_id, keep_alive)
    headers[1:1] = [("content-type", content_type), ("content-length", str(len(body)))]
    if gzip:
        headers.append(("content-encoding", "gzip"))
    headers += list((extra or {}).items())
    ex.status = status
    ex.response_headers = headers
    writer.write(head_bytes(status, headers))
    if not head_only:
        writer.write(body)
        ex.response_bytes = body
    await writer.drain()
    ex.complete = True


def _pieces(events: list[bytes], reply: Reply) -> list[bytes]:
    """The HTTP chunks: per fixed byte count (chunk_size) or per events_per_chunk events."""
    stream = b"".join(events)
    if reply.chunk_size:
        size = max(1, reply.chunk_size)
        return [stream[i : i + size] for i in range(0, len(stream), size)]
    per = max(1, reply.events_per_chunk)
    return [b"".join(events[i : i + per]) for i in range(0, len(events), per)]


async def write_sse(
    writer: asyncio.StreamWriter,
    ex: Exchange,
    reply: Reply,
    events: list[bytes],
    keep_alive: bool,
    truncate: bool,
    delay: float,
) -> None:
    """The event stream; delay: seconds between chunks (0: as fast as the socket takes)."""
    headers = _base_headers(ex.request_id, keep_alive and not truncate)
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
    writer.write(head_bytes(200, headers))

    # Cumulative end offset of each event, to count events fully written.
    ends = list(itertools.accumulate(len(e) for e in events))
    pieces = _pieces(events, reply)
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
