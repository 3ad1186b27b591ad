"""clauditor's ext_proc subset reads Envoy's wire bytes (field numbers pinned by hand)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from clauditor.clock import ManualClock
from clauditor.wire import protocol as pb
from clauditor.wire.exchange import Headers
from clauditor.wire.ext_proc import ExtProcServicer


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:  # wire type 2: length-delimited
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _bool(number: int) -> bytes:  # wire type 0: varint
    return _varint(number << 3) + b"\x01"


def test_decodes_envoy_bytes_and_skips_unknown_fields() -> None:
    header = _field(1, b":path") + _field(3, b"/v1/messages?beta=true")  # key, raw_value
    header_map = _field(1, header)
    http_headers = _field(1, header_map) + _bool(3)  # headers, end_of_stream
    attributes = _field(9, _field(1, b"envoy.filters.http.ext_proc") + _field(2, b"\x0a\x00"))
    wire = _field(2, http_headers) + attributes + _bool(10)  # request_headers, observability
    message = pb.ProcessingRequest.FromString(wire)
    assert message.WhichOneof("request") == "request_headers"
    assert message.observability_mode is True
    (h,) = message.request_headers.headers.headers
    assert (h.key, h.value, h.raw_value) == (":path", "", b"/v1/messages?beta=true")
    assert message.request_headers.end_of_stream is True

    body = pb.ProcessingRequest.FromString(_field(5, _field(1, b"data: {}\n\n") + _bool(2)))
    assert body.WhichOneof("request") == "response_body"
    assert (body.response_body.body, body.response_body.end_of_stream) == (b"data: {}\n\n", True)


def test_continue_replies_encode_to_envoys_field_numbers() -> None:
    reply = pb.ProcessingResponse(request_body=pb.BodyResponse()).SerializeToString()
    assert reply == _field(3, b"")  # ProcessingResponse.request_body = 3, empty = CONTINUE
    reply = pb.ProcessingResponse(response_headers=pb.HeadersResponse()).SerializeToString()
    assert reply == _field(2, b"")


class _Sink:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def open_exchange(self, exchange_id: int, ts: float) -> _Sink:
        return self

    def on_request_headers(self, headers: Headers, ts: float, end_of_stream: bool) -> None:
        self.seen.append(f"headers {dict(headers)[':path']}")

    def on_request_body(self, chunk: bytes, ts: float, end_of_stream: bool) -> None:
        self.seen.append(f"body {chunk!r} {end_of_stream}")

    def on_response_headers(self, headers: Headers, ts: float, end_of_stream: bool) -> None:
        raise RuntimeError("consumer bug")

    def on_response_body(self, chunk: bytes, ts: float, end_of_stream: bool) -> None:
        self.seen.append("never: the observer was dropped after its bug")

    def on_close(self, ts: float, error: str | None) -> None:
        self.seen.append(f"close {error}")


def _messages(observability: bool) -> list[object]:
    value = pb.HeaderValue(key=":path", raw_value=b"/v1/messages")
    headers = pb.HttpHeaders(headers=pb.HeaderMap(headers=[value]))
    return [
        pb.ProcessingRequest(request_headers=headers, observability_mode=observability),
        pb.ProcessingRequest(
            request_body=pb.HttpBody(body=b"{}", end_of_stream=True),
            observability_mode=observability,
        ),
        pb.ProcessingRequest(response_headers=headers, observability_mode=observability),
        pb.ProcessingRequest(
            response_body=pb.HttpBody(body=b"x"), observability_mode=observability
        ),
    ]


async def _run(servicer: ExtProcServicer, messages: list[object]) -> list[str]:
    async def requests() -> AsyncIterator[object]:
        for m in messages:
            yield m

    return [r.WhichOneof("response") async for r in servicer.Process(requests(), None)]  # type: ignore[arg-type]


def test_observability_mode_sends_nothing_and_survives_consumer_bugs() -> None:
    sink = _Sink()
    servicer = ExtProcServicer(sink, ManualClock())
    assert asyncio.run(_run(servicer, _messages(True))) == []
    assert sink.seen == ["headers /v1/messages", "body b'{}' True", "close None"]
    assert servicer.stats.consumer_errors == 1
    assert servicer.stats.streams_closed == 1 and servicer.stats.active == 0


def test_normal_mode_continues_every_message() -> None:
    servicer = ExtProcServicer(_Sink(), ManualClock())
    replies = asyncio.run(_run(servicer, _messages(False)))
    assert replies == ["request_headers", "request_body", "response_headers", "response_body"]


class _Recorder(_Sink):
    def on_response_headers(self, headers: Headers, ts: float, end_of_stream: bool) -> None:
        self.seen.append(f"response headers {end_of_stream}")

    def on_response_body(self, chunk: bytes, ts: float, end_of_stream: bool) -> None:
        self.seen.append(f"response body {chunk!r} {end_of_stream}")


def test_the_core_ends_the_side_stream_once_the_response_ended() -> None:
    """Envoy would hold it for deferred_close_timeout; nothing comes after the response's
    end (trailers are SKIP), so the core ends it and reads no further."""
    sink = _Recorder()
    servicer = ExtProcServicer(sink, ManualClock())
    last = pb.ProcessingRequest(
        response_body=pb.HttpBody(body=b"y", end_of_stream=True), observability_mode=True
    )
    never = pb.ProcessingRequest(response_body=pb.HttpBody(body=b"z"), observability_mode=True)
    assert asyncio.run(_run(servicer, [*_messages(True), last, never])) == []
    assert sink.seen[-3:] == ["response body b'x' False", "response body b'y' True", "close None"]
    assert servicer.stats.streams_ended_early == 1 and servicer.stats.streams_closed == 1
    assert servicer.stats.messages == 5
