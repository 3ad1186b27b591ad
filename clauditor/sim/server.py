"""A fake Anthropic Messages API server for the demo, the benchmarks and the tests.

Raw asyncio instead of a web framework so tests control every byte on the wire: HTTP/1.1
keep-alive, one HTTP chunk per SSE event (or grouped / split mid-event), delays between
events, mid-stream errors, truncated streams, gzip and plain garbage. `FakeUpstream` only
composes the parts: the reply policy (`replies`), the usage model (`usage`), the message
(`message`), the bytes (`wire`, `http1`) and the record of exchanges (`ExchangeLog`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
from collections.abc import Iterator

from clauditor.sim.exchange import Exchange
from clauditor.sim.http1 import Rejected, Request, read_request, wants_keep_alive
from clauditor.sim.ids import new_request_id
from clauditor.sim.message import compact_json, plan_message, unary_message
from clauditor.sim.replies import Reply, ReplyPolicy, session_of
from clauditor.sim.usage import PromptCache
from clauditor.sim.wire import (
    error_body,
    error_bytes,
    stream_events,
    write_simple,
    write_sse,
    write_unary,
)

__all__ = ["ExchangeLog", "FakeUpstream"]


class ExchangeLog:
    """The finished exchanges in completion order, and waiting for them (thread-safe)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._exchanges: list[Exchange] = []

    def record(self, ex: Exchange) -> None:
        with self._cond:
            self._exchanges.append(ex)
            self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            self._exchanges.clear()

    def snapshot(self) -> list[Exchange]:
        with self._cond:
            return list(self._exchanges)

    def wait_for(self, n: int, timeout: float) -> list[Exchange]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._exchanges) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self._exchanges)} of {n} exchanges after {timeout}s")
                self._cond.wait(left)
            return list(self._exchanges)

    async def wait_for_async(self, n: int, timeout: float) -> list[Exchange]:
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                if len(self._exchanges) >= n:
                    return list(self._exchanges)
                have = len(self._exchanges)
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{have} of {n} exchanges after {timeout}s")
            await asyncio.sleep(0.005)


class FakeUpstream:
    """Fake Anthropic API on a loopback port. The reply policy: clauditor.sim.replies."""

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
        self.policy = ReplyPolicy()
        self.cache = PromptCache()
        self.log = ExchangeLog()
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
        self.policy.script(session_id, replies)

    def reset(self) -> None:
        """Forget exchanges, scripts and the simulated cache."""
        self.log.clear()
        self.policy.reset()
        self.cache.reset()

    @property
    def exchanges(self) -> list[Exchange]:
        """Snapshot of the finished exchanges, in completion order."""
        return self.log.snapshot()

    def wait_for(self, n: int, timeout: float) -> list[Exchange]:
        """Block until n exchanges are recorded; TimeoutError otherwise. Not on the server loop."""
        on_loop = self._loop_thread == threading.get_ident()
        if on_loop and self._loop is not None and self._loop.is_running():
            raise RuntimeError("wait_for would block the server's loop; use wait_for_async")
        return self.log.wait_for(n, timeout)

    async def wait_for_async(self, n: int, timeout: float) -> list[Exchange]:
        """wait_for for code running on the server's own loop."""
        return await self.log.wait_for_async(n, timeout)

    # ------------------------------------------------------------ serving

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
                req = await read_request(reader, writer, self.idle_timeout)
                if isinstance(req, Rejected):
                    await write_simple(writer, 400, req.message)
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

    async def _respond(
        self, req: Request, writer: asyncio.StreamWriter, conn_id: int, peer_port: int
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
        keep_alive = wants_keep_alive(req)
        try:
            if req.method == "POST" and req.path == "/v1/messages":
                await self._serve_messages(req, ex, writer, keep_alive)
            else:
                body = error_body("not_found_error", ex.request_id, f"Not found: {req.path}")
                await write_unary(
                    writer,
                    ex,
                    404,
                    compact_json(body).encode(),
                    keep_alive,
                    head_only=req.method == "HEAD",
                )
        except (ConnectionError, asyncio.IncompleteReadError):
            ex.complete = False
        finally:
            ex.ended = time.monotonic()
            self.log.record(ex)
        return keep_alive and ex.complete

    async def _serve_messages(
        self, req: Request, ex: Exchange, writer: asyncio.StreamWriter, keep_alive: bool
    ) -> None:
        try:
            payload = json.loads(req.body)
            if not isinstance(payload, dict):
                raise ValueError("body is not an object")
        except ValueError as e:
            body = error_body("invalid_request_error", ex.request_id, f"Invalid JSON body: {e}")
            await write_unary(writer, ex, 400, compact_json(body).encode(), keep_alive)
            return
        session = session_of(req.header("x-claude-code-session-id"), payload)
        ex.session_id = session
        stream = payload.get("stream") is True
        ex.stream = stream
        reply = self.policy.reply(session, req.body, payload, stream)
        ex.reply = reply

        if reply.status != 200:
            err = error_bytes(reply, ex.request_id) if reply.garbage is None else reply.garbage
            await write_unary(
                writer, ex, reply.status, err, keep_alive, extra=reply.headers, gzip=reply.gzip
            )
            return

        model = str(payload.get("model") or "claude-opus-4-8")
        usage = self.cache.usage(session, model, payload, req.body)
        plan = plan_message(reply, model, usage)
        ex.message = unary_message(plan)
        if not stream:
            data = (
                reply.garbage
                if reply.garbage is not None
                else compact_json(unary_message(plan)).encode()
            )
            await write_unary(
                writer, ex, 200, data, keep_alive, extra=reply.headers, gzip=reply.gzip
            )
            return
        events, truncate = stream_events(plan, reply)
        delay = reply.event_delay or self.default_event_delay
        await write_sse(writer, ex, reply, events, keep_alive, truncate, delay)
