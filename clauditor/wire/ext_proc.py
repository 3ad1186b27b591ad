"""The grpc.aio ExternalProcessor: one side stream per HTTP exchange, handed to a sink.

Envoy runs the filter in observability mode, so it never waits for a reply and
clauditor sends none. If someone runs the filter in normal mode instead, each
message gets an immediate CONTINUE so traffic still flows.

With a token (`--ext-proc-token`; `up` makes one per start), a stream whose metadata
lacks it (`x-clauditor-token`, sent by Envoy's grpc_service `initial_metadata`) is
aborted UNAUTHENTICATED before a single message is read, and counted: any other local
process could otherwise inject forged exchanges (sessions, costs) into the history.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc

from clauditor.clock import Clock
from clauditor.wire import protocol as pb
from clauditor.wire.auth import TOKEN_METADATA, matches, presented
from clauditor.wire.exchange import ExchangeObserver, ExchangeSink, Headers, WireStats

# The servicer context of one Process stream (its request and response messages).
Context = grpc.aio.ServicerContext[pb.ProcessingRequest, pb.ProcessingResponse]
log = logging.getLogger(__name__)

_CONTINUE_FOR = {
    "request_headers": lambda: pb.ProcessingResponse(request_headers=pb.HeadersResponse()),
    "response_headers": lambda: pb.ProcessingResponse(response_headers=pb.HeadersResponse()),
    "request_body": lambda: pb.ProcessingResponse(request_body=pb.BodyResponse()),
    "response_body": lambda: pb.ProcessingResponse(response_body=pb.BodyResponse()),
    "request_trailers": lambda: pb.ProcessingResponse(request_trailers=pb.TrailersResponse()),
    "response_trailers": lambda: pb.ProcessingResponse(response_trailers=pb.TrailersResponse()),
}


def _response_ended(message: Any, kind: str | None) -> bool:
    """The message carries the response's end of stream: the exchange is over."""
    if kind == "response_body":
        return bool(message.response_body.end_of_stream)
    if kind == "response_headers":
        return bool(message.response_headers.end_of_stream)
    return False


def decode_headers(header_map: Any) -> Headers:
    """Envoy sends either `value` or `raw_value` (bytes) depending on version: read both."""
    out: Headers = []
    for h in header_map.headers:
        value = h.value if h.value else h.raw_value.decode("utf-8", "replace")
        out.append((h.key.lower(), value))
    return out


class ExtProcServicer:
    def __init__(
        self,
        sink: ExchangeSink,
        clock: Clock,
        stats: WireStats | None = None,
        *,
        token: str | None = None,
    ) -> None:
        self._sink = sink
        self._clock = clock
        self.stats = stats or WireStats()
        self._ids = itertools.count(1)
        self._token = token.encode() if token else None
        self._refusals_logged = float("-inf")

    def _authorised(self, context: Context) -> bool:
        if self._token is None:
            return True
        return matches(presented(context.invocation_metadata()), self._token)

    async def _refuse(self, context: Context) -> None:
        self.stats.streams_refused += 1
        now = self._clock.now()
        if now - self._refusals_logged > 60:  # a flood must not flood the log
            self._refusals_logged = now
            log.warning(
                "refused an ext_proc stream from %s without the right %s (%d refused so far)",
                context.peer(),
                TOKEN_METADATA,
                self.stats.streams_refused,
            )
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong ext_proc token")

    async def Process(
        self,
        request_iterator: AsyncIterator[pb.ProcessingRequest],
        context: Context,
    ) -> AsyncIterator[pb.ProcessingResponse]:
        if not self._authorised(context):
            await self._refuse(context)  # raises: the stream ends here, nothing read
            return
        stats = self.stats
        stats.streams_opened += 1
        stats.active += 1
        exchange_id = next(self._ids)
        observer = self._open(exchange_id)
        error: str | None = None
        faulted = False  # a consumer bug: skip the rest of this exchange, but still close it
        try:
            async for message in request_iterator:
                stats.messages += 1
                kind = message.WhichOneof("request")
                if observer is not None and kind is not None and not faulted:
                    faulted = not self._dispatch(observer, kind, message)
                if not message.observability_mode and kind in _CONTINUE_FOR:
                    yield _CONTINUE_FOR[kind]()
                if _response_ended(message, kind):
                    # Nothing else comes (trailers are SKIP): end the side stream now.
                    # Envoy would otherwise hold it open for deferred_close_timeout after
                    # every exchange, so a long hold (the time a lagging core has to catch
                    # up) would keep thousands of idle streams open on both sides.
                    stats.streams_ended_early += 1
                    break
        except asyncio.CancelledError:
            # Envoy reset the side stream (client gone, deferred close timeout...).
            error = "cancelled"
            raise
        except Exception as exc:  # a broken side stream must never take the server down
            error = type(exc).__name__
            log.warning("ext_proc stream %d failed: %s", exchange_id, error)
        finally:
            stats.active -= 1
            if error is None:
                stats.streams_closed += 1
            else:
                stats.streams_failed += 1
                stats.count_error(error)
            if observer is not None:
                self._safe(observer.on_close, self._clock.now(), error)

    def _open(self, exchange_id: int) -> ExchangeObserver | None:
        try:
            return self._sink.open_exchange(exchange_id, self._clock.now())
        except Exception:
            self.stats.consumer_errors += 1
            log.exception("opening exchange %d failed", exchange_id)
            return None

    def _dispatch(
        self, observer: ExchangeObserver, kind: str, message: pb.ProcessingRequest
    ) -> bool:
        ts = self._clock.now()
        try:
            if kind == "request_headers":
                m = message.request_headers
                observer.on_request_headers(decode_headers(m.headers), ts, m.end_of_stream)
            elif kind == "request_body":
                b = message.request_body
                self.stats.body_bytes += len(b.body)
                observer.on_request_body(b.body, ts, b.end_of_stream)
            elif kind == "response_headers":
                m = message.response_headers
                observer.on_response_headers(decode_headers(m.headers), ts, m.end_of_stream)
            elif kind == "response_body":
                b = message.response_body
                self.stats.body_bytes += len(b.body)
                observer.on_response_body(b.body, ts, b.end_of_stream)
            # Trailers are configured SKIP; if they come anyway they carry nothing we use.
        except Exception:
            # A consumer bug loses this exchange's meaning, never the stream or the server.
            self.stats.consumer_errors += 1
            log.exception("consumer failed on %s", kind)
            return False
        return True

    def _safe(self, fn, *args) -> None:  # type: ignore[no-untyped-def]
        try:
            fn(*args)
        except Exception:
            self.stats.consumer_errors += 1
            log.exception("consumer failed on close")


async def start_grpc_server(
    servicer: ExtProcServicer, host: str, port: int
) -> tuple[grpc.aio.Server, int]:
    """Bind the ext_proc service; returns the server and the bound port."""
    server = grpc.aio.server(
        options=[
            # Envoy may keep the HTTP/2 connection alive with pings; don't GOAWAY it.
            ("grpc.http2.min_recv_ping_interval_without_data_ms", 5000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
        ]
    )
    server.add_generic_rpc_handlers((pb.service_handler(servicer.Process),))
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind the gRPC address {host}:{port} (in use?)")
    await server.start()
    return server, bound
