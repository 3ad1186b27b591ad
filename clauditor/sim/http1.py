"""HTTP/1.1 for the fake upstream's side of the connection: reading a request (head,
Content-Length or chunked body, `Expect: 100-continue`), the keep-alive rule, and the
status line and head of a response. Bounded everywhere: the peer may be hostile."""

from __future__ import annotations

import asyncio
import http
from dataclasses import dataclass

__all__ = [
    "Rejected",
    "Request",
    "head_bytes",
    "read_request",
    "reason",
    "wants_keep_alive",
]

MAX_BODY = 64 * 1024 * 1024
_MAX_CHUNKS = 1_000_000  # bound on request-body chunks, against a malicious peer


@dataclass
class Request:
    method: str
    path: str
    query: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        low = name.lower()
        return next((v for k, v in self.headers if k.lower() == low), None)


@dataclass
class Rejected:
    """A request that is not HTTP/1.1 as the fake reads it: answered 400, then closed."""

    message: str


class _BadRequest(Exception):
    pass


async def read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, idle_timeout: float
) -> Request | Rejected | None:
    """The next request on the connection; None when the peer closed or stayed idle."""
    try:
        return await _read_request(reader, writer, idle_timeout)
    except _BadRequest as e:
        return Rejected(str(e))


async def _read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, idle_timeout: float
) -> Request | None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), idle_timeout)
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
    req = Request(method, path, query, version, headers)
    if (req.header("expect") or "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    req.body = await asyncio.wait_for(_read_body(reader, req), idle_timeout)
    return req


async def _read_body(reader: asyncio.StreamReader, req: Request) -> bytes:
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
            if total > MAX_BODY:
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
    if n < 0 or n > MAX_BODY:
        raise _BadRequest("bad content-length")
    return await reader.readexactly(n)


def wants_keep_alive(req: Request) -> bool:
    conn = (req.header("connection") or "").lower()
    if req.version == "HTTP/1.0":
        return "keep-alive" in conn
    return "close" not in conn


def reason(status: int) -> str:
    if status == 529:
        return "Site Overloaded"
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def head_bytes(status: int, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason(status)}"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
