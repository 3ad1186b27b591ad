"""A minimal HTTP/1.1 transport for httpx that writes request headers exactly as given.

httpx's default stack (httpcore + h11) moves `Host` to the front; Claude Code (Bun) sends
it near the end. Tests that compare header order need the bytes as Claude Code writes
them, so the synthetic client uses this transport: headers in the request's order and
casing, keep-alive connection reuse per origin, Content-Length / chunked / close-delimited
response bodies, one yielded piece per HTTP chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable

import httpx

__all__ = ["OrderedHeadersTransport"]

_MAX_HEAD = 256 * 1024
_MAX_CHUNKS = 10_000_000  # bound on response chunks per body
_Origin = tuple[str, str, int]


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        self.writer.close()


async def _timed(
    coro: Awaitable[bytes], timeout: float | None, exc: type[httpx.TimeoutException]
) -> bytes:
    try:
        return await asyncio.wait_for(coro, timeout)
    except asyncio.TimeoutError:
        raise exc("timed out") from None


class _Body(httpx.AsyncByteStream):
    """Response body; gives the connection back to the pool when read to its end."""

    def __init__(
        self,
        transport: OrderedHeadersTransport,
        origin: _Origin,
        conn: _Conn,
        framing: str,
        length: int,
        keep_alive: bool,
        read_timeout: float | None,
    ) -> None:
        self._t = transport
        self._origin = origin
        self._conn: _Conn | None = conn
        self._framing = framing  # "empty" | "length" | "chunked" | "close"
        self._length = length
        self._keep_alive = keep_alive
        self._timeout = read_timeout
        self._done = framing == "empty"

    async def _read(self, coro: Awaitable[bytes]) -> bytes:
        try:
            return await _timed(coro, self._timeout, httpx.ReadTimeout)
        except asyncio.IncompleteReadError:
            raise httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body"
            ) from None
        except (ConnectionError, asyncio.LimitOverrunError) as e:
            raise httpx.ReadError(str(e)) from None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self._conn
        if conn is None or self._done:
            return
        r = conn.reader
        if self._framing == "length":
            left = self._length
            for _ in range(_MAX_CHUNKS):
                if left <= 0:
                    break
                data = await self._read(r.read(min(left, 65536)))
                if not data:
                    raise httpx.RemoteProtocolError("peer closed connection mid-body")
                left -= len(data)
                yield data
        elif self._framing == "chunked":
            for _ in range(_MAX_CHUNKS):
                line = await self._read(r.readuntil(b"\r\n"))
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise httpx.RemoteProtocolError("bad chunk size") from None
                if size == 0:
                    for _ in range(1000):  # trailers up to the blank line
                        if await self._read(r.readuntil(b"\r\n")) == b"\r\n":
                            break
                    break
                data = await self._read(r.readexactly(size))
                if await self._read(r.readexactly(2)) != b"\r\n":
                    raise httpx.RemoteProtocolError("bad chunk terminator")
                yield data
        else:  # close-delimited
            self._keep_alive = False
            for _ in range(_MAX_CHUNKS):
                data = await self._read(r.read(65536))
                if not data:
                    break
                yield data
        self._done = True

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._done and self._keep_alive:
            self._t._release(self._origin, conn)
        else:
            conn.close()


class OrderedHeadersTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 with keep-alive; request headers go out in exactly the given order."""

    def __init__(self, max_idle_per_origin: int = 4) -> None:
        self.max_idle_per_origin = max_idle_per_origin
        self._idle: dict[_Origin, list[_Conn]] = {}
        self.connections_opened = 0

    def _release(self, origin: _Origin, conn: _Conn) -> None:
        idle = self._idle.setdefault(origin, [])
        if len(idle) < self.max_idle_per_origin and not conn.writer.is_closing():
            idle.append(conn)
        else:
            conn.close()

    async def _connect(self, origin: _Origin, timeout: float | None) -> _Conn:
        scheme, host, port = origin
        ctx = ssl.create_default_context() if scheme == "https" else None
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=ctx, limit=_MAX_HEAD), timeout
            )
        except asyncio.TimeoutError:
            raise httpx.ConnectTimeout(f"connect to {host}:{port} timed out") from None
        except OSError as e:
            raise httpx.ConnectError(str(e)) from None
        self.connections_opened += 1
        return _Conn(reader, writer)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        port = url.port or (443 if url.scheme == "https" else 80)
        origin: _Origin = (url.scheme, url.host, port)
        timeouts = request.extensions.get("timeout", {})
        body = await request.aread()
        head = self._head(request, body)
        for attempt in range(2):
            idle = self._idle.get(origin)
            reused = bool(idle)
            conn = idle.pop() if idle else await self._connect(origin, timeouts.get("connect"))
            try:
                conn.writer.write(head + body)
                await conn.writer.drain()
                return await self._response(request, origin, conn, timeouts.get("read"))
            except (ConnectionError, asyncio.IncompleteReadError, httpx.RemoteProtocolError):
                conn.close()
                # A pooled connection the server already closed: retry once on a new one.
                if reused and attempt == 0:
                    continue
                raise httpx.RemoteProtocolError("server disconnected without a response") from None
            except BaseException:
                conn.close()
                raise
        raise httpx.RemoteProtocolError("unreachable")  # pragma: no cover

    @staticmethod
    def _head(request: httpx.Request, body: bytes) -> bytes:
        target = request.url.raw_path.decode("ascii")
        lines = [f"{request.method} {target} HTTP/1.1".encode()]
        names = {k.lower() for k, _ in request.headers.raw}
        for k, v in request.headers.raw:
            lines.append(k + b": " + v)
        if b"host" not in names:
            lines.append(b"Host: " + request.url.netloc)
        if body and b"content-length" not in names and b"transfer-encoding" not in names:
            lines.append(b"Content-Length: " + str(len(body)).encode())
        return b"\r\n".join(lines) + b"\r\n\r\n"

    async def _response(
        self, request: httpx.Request, origin: _Origin, conn: _Conn, read_timeout: float | None
    ) -> httpx.Response:
        for _ in range(10):  # skip interim 1xx responses
            raw = await _timed(conn.reader.readuntil(b"\r\n\r\n"), read_timeout, httpx.ReadTimeout)
            lines = raw[:-4].decode("latin-1").split("\r\n")
            parts = lines[0].split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
                raise httpx.RemoteProtocolError(f"bad status line {lines[0][:80]!r}")
            status = int(parts[1])
            if status >= 200 or status == 101:
                break
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers.append((name, value.strip()))
        low = {k.lower(): v.lower() for k, v in headers}
        keep_alive = "close" not in low.get("connection", "") and parts[0] != "HTTP/1.0"
        if request.method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            framing, length = "empty", 0
        elif "chunked" in low.get("transfer-encoding", ""):
            framing, length = "chunked", 0
        elif "content-length" in low:
            framing, length = "length", int(low["content-length"])
            if length == 0:
                framing = "empty"
        else:
            framing, length = "close", 0
        stream = _Body(self, origin, conn, framing, length, keep_alive, read_timeout)
        return httpx.Response(
            status,
            headers=headers,
            stream=stream,
            request=request,
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": parts[2].encode() if len(parts) > 2 else b"",
            },
        )

    async def aclose(self) -> None:
        for conns in self._idle.values():
            for c in conns:
                with contextlib.suppress(Exception):
                    c.close()
        self._idle.clear()
