"""The SSE client: decoding, reconnect with bounded backoff, and --plain output."""

from __future__ import annotations

import socket
import threading
import time
from io import StringIO
from typing import Any

import httpx
import pytest

from clauditor.netaddr import free_port
from clauditor.watch.client import Backoff, WatchClient, WatchUnavailable, parse_sse
from clauditor.watch.plain import run_plain


def test_parse_sse() -> None:
    lines = [
        ": ping",
        "",
        'data: {"type":"hello","session_id":null}',
        "",
        "data:{not json}",
        "",
        'data: {"type":',
        'data: "turn_start"}',
        "",
        "event: ignored",
        "data: [1, 2]",
        "",
        'data: {"type":"cut off"',  # no blank line: never dispatched
    ]
    assert list(parse_sse(lines)) == [
        {"type": "hello", "session_id": None},
        {"type": "turn_start"},
    ]


def test_backoff_is_exponential_and_capped() -> None:
    b = Backoff(initial=0.5, factor=2.0, maximum=10.0)
    assert [b.delay(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_unreachable_core_is_a_clear_error() -> None:
    client = WatchClient(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(
        WatchUnavailable, match=r"cannot reach the clauditor core at .*clauditor up"
    ):
        client.check()


def sse(*events: str) -> bytes:
    return "".join(f"data: {e}\n\n" for e in events).encode()


def test_reconnects_with_backoff_and_says_so() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        if len(calls) == 3:
            return httpx.Response(503)
        if len(calls) == 4:
            return httpx.Response(200, content=sse('{"type":"hello","session_id":null}'))
        raise httpx.ConnectError("connection refused")

    client = WatchClient(
        "http://core",
        "abc",
        backoff=Backoff(initial=0.01, maximum=0.02),
        max_attempts=3,
        transport=httpx.MockTransport(handler),
    )
    got: list[dict[str, Any]] = []
    client.run(got.append, threading.Event())
    states = [(e["state"], e.get("attempt")) for e in got if e["type"] == "connection"]
    assert states == [
        ("reconnecting", 1),
        ("reconnecting", 2),
        ("reconnecting", 3),  # the 503
        ("connected", None),
        ("reconnecting", 1),  # the stream ended: attempts start over after a success
        ("reconnecting", 2),
        ("reconnecting", 3),
        ("failed", None),
    ]
    assert [e["type"] for e in got].count("hello") == 1
    assert len(calls) == 7
    assert all(url.endswith("/watch?session=abc") for url in calls)
    assert "connection refused" in got[0]["error"]
    assert "503" in got[2]["error"]


def test_stop_ends_the_loop_between_attempts() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    stop = threading.Event()
    got: list[dict[str, Any]] = []

    def emit(event: dict[str, Any]) -> None:
        got.append(event)
        stop.set()

    client = WatchClient("http://core", transport=httpx.MockTransport(handler))
    client.run(emit, stop)  # returns: would otherwise retry forever
    assert [e["state"] for e in got] == ["reconnecting"]


def test_close_wakes_a_run_blocked_on_a_silent_stream() -> None:
    """A real socket: the server sends the headers and one event, then nothing; close()
    from another thread ends run() at once, not after the 45 s read timeout."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted: list[socket.socket] = []

    def serve() -> None:
        conn, _ = listener.accept()
        accepted.append(conn)
        conn.recv(65536)
        conn.sendall(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        body = b'data: {"type":"hello","session_id":null}\n\n'
        conn.sendall(b"%x\r\n%s\r\n" % (len(body), body))

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    client = WatchClient(f"http://127.0.0.1:{port}")
    got: list[dict[str, Any]] = []
    stop = threading.Event()
    reader = threading.Thread(target=client.run, args=(got.append, stop), daemon=True)
    reader.start()
    try:
        for _ in range(200):  # up to 2 s for the hello
            if any(e.get("type") == "hello" for e in got):
                break
            time.sleep(0.01)
        assert any(e.get("type") == "hello" for e in got)
        t0 = time.monotonic()
        stop.set()
        client.close()
        reader.join(5)
        assert not reader.is_alive()
        assert time.monotonic() - t0 < 1.0
    finally:
        for conn in accepted:
            conn.close()
        listener.close()


def test_plain_prints_one_line_per_event() -> None:
    body = sse(
        '{"type":"hello","session_id":null,"ts":"2027-01-15T08:00:00.000Z","live":[]}',
        '{"type":"tool_use","session_id":"abcdef1234","ts":"2027-01-15T08:00:01.000Z",'
        '"tool":"Bash","summary":"ls -la"}',
    )
    client = WatchClient(
        "http://core",
        max_attempts=0,
        transport=httpx.MockTransport(lambda r: httpx.Response(200, content=body)),
    )
    out, err = StringIO(), StringIO()
    assert run_plain(client, out, err) == 1  # the stream ended and no retries were allowed
    assert out.getvalue().splitlines() == [
        "2027-01-15T08:00:00.000Z -        hello          connected to core ? · 0 live",
        "2027-01-15T08:00:01.000Z abcdef12 tool_use       Bash ls -la",
    ]
    assert "clauditor watch: connected" in err.getvalue()
    assert "failed" in err.getvalue()
