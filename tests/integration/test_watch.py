"""`/watch` against a running core (real Envoy, real core, fake Anthropic), and the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from clauditor.clock import parse_iso
from clauditor.netaddr import free_port
from clauditor.sim.claude import SyntheticSession
from clauditor.watch.client import Backoff, WatchClient, parse_sse
from tests.helpers import wait_until
from tests.integration.stack import Stack

pytestmark = pytest.mark.integration

BASH = '[[fake:tool Bash {"command": "ls -la /tmp"}]]'
READ = '[[fake:tool Read {"file_path": "/srv/app/main.py"}]]'


class Collector:
    """A /watch subscriber on its own thread; every event stamped on arrival there."""

    def __init__(self, url: str, session: str | None = None) -> None:
        self.client = WatchClient(url, session, backoff=Backoff(initial=0.1, maximum=0.5))
        self.events: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=self.client.run, args=(self._emit, self.stop), daemon=True
        )
        self.thread.start()

    def _emit(self, event: dict[str, Any]) -> None:
        event["_received"] = time.time()
        self.events.append(event)  # list.append is atomic; readers copy first

    def pump(self) -> list[dict[str, Any]]:
        return list(self.events)

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
        return wait_until(lambda: predicate(self.pump()) and self.pump(), timeout=timeout)

    def of(self, session_id: str) -> list[dict[str, Any]]:
        return [e for e in self.pump() if e.get("session_id") == session_id]

    def close(self) -> None:
        self.stop.set()
        self.client.close()
        self.thread.join(5)


@pytest.fixture
def collectors() -> Iterator[list[Collector]]:
    made: list[Collector] = []
    yield made
    for c in made:
        c.close()


def watcher(stack: Stack, made: list[Collector], session: str | None = None) -> Collector:
    c = Collector(stack.api_url, session)
    made.append(c)
    c.wait_for(lambda evs: any(e["type"] == "hello" for e in evs))
    return c


def drive(stack: Stack, prompts: dict[str, list[str]]) -> None:
    """Concurrent sessions, each its own connection, each running its prompts in order."""

    async def one(sid: str, turns: list[str]) -> None:
        async with SyntheticSession(stack.proxy_url, session_id=sid) as s:
            for prompt in turns:
                await s.turn(prompt)

    async def main() -> None:
        await asyncio.gather(*(one(sid, turns) for sid, turns in prompts.items()))

    asyncio.run(main())


def watch_stats(stack: Stack) -> dict[str, Any]:
    return stack.get("/api/stats").json()["watch"]


def one_turn_sequence(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events if e["type"] not in ("cache_event", "context_status")]


def test_events_arrive_in_order_for_two_concurrent_sessions(
    stack: Stack, collectors: list[Collector]
) -> None:
    c = watcher(stack, collectors)
    a, b = "a0000000-0000-4000-8000-00000000000a", "b0000000-0000-4000-8000-00000000000b"
    drive(stack, {a: [f"list tmp {BASH}"], b: [f"read main {READ}"]})
    # Each turn ends with its turn_end, then the session's state: your turn.
    c.wait_for(
        lambda evs: (
            sum(e["type"] == "state_changed" and e["state"] == "your_turn" for e in evs) == 2
        )
    )
    for sid, tool, summary in ((a, "Bash", "ls -la /tmp"), (b, "Read", "/srv/app/main.py")):
        mine = c.of(sid)
        assert one_turn_sequence(mine) == [
            "session_start",
            "turn_start",
            "request_start",
            "state_changed",
            "tool_use",
            "request_end",
            "state_changed",
            "tool_result",
            "request_start",
            "state_changed",
            "request_end",
            "turn_end",
            "state_changed",
        ], sid
        states = [(e["state"], e["tool"]) for e in mine if e["type"] == "state_changed"]
        assert states == [("working", None), ("tool", tool), ("working", None), ("your_turn", None)]
        tool_use = next(e for e in mine if e["type"] == "tool_use")
        assert (tool_use["tool"], tool_use["summary"]) == (tool, summary)
        start = mine[0]
        assert start["model"] == "claude-opus-4-8" and start["synthetic"] is False
        assert start["prompt"].startswith(("list tmp", "read main"))
        end = next(e for e in mine if e["type"] == "turn_end")
        assert end["outcome"] == "completed" and end["cost_usd"] > 0
        assert end["usage"]["output_tokens"] > 0
        seqs = [e["seq"] for e in mine]
        assert seqs == sorted(seqs)
        times = [parse_iso(e["ts"]) for e in mine]
        assert all(t is not None for t in times)
    # Both sessions' events interleave on one stream, each in its own order.
    assert {e["session_id"] for e in c.events if e["type"] == "turn_end"} == {a, b}


def test_late_session_subscriber_gets_the_synthetic_session_start(
    stack: Stack, collectors: list[Collector]
) -> None:
    sid = "c0000000-0000-4000-8000-00000000000c"
    drive(stack, {sid: [f"audit the logs {BASH}", "and summarise"]})
    wait_until(lambda: any(s["session_id"] == sid and s["turns"] == 2 for s in stack.sessions()))
    late = watcher(stack, collectors, sid)
    events = late.wait_for(lambda evs: len(evs) >= 3)
    kinds = [e["type"] for e in events if e["type"] != "connection"]
    assert kinds[:2] == ["hello", "session_start"]
    start = next(e for e in events if e["type"] == "session_start")
    assert start["synthetic"] is True
    assert start["session_id"] == sid
    assert start["prompt"].startswith("audit the logs")
    assert start["name"] == "audit the logs"
    assert (start["model"], start["turn"], start["last_tool"]) == ("claude-opus-4-8", 2, "Bash")
    assert start["status"] == "active"
    assert start["cache_expires_at"] is not None and start["cost_usd"] > 0
    # The last seconds follow, marked as replayed, and only for this session.
    replayed = [e for e in events if e.get("replay")]
    assert replayed and all(e["session_id"] in (sid, None) for e in replayed)


def stalled_subscriber(stack: Stack) -> socket.socket:
    """Subscribes to /watch and never reads: a tiny receive buffer fills at once."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    sock.connect(("127.0.0.1", stack.api))
    sock.sendall(b"GET /watch?heartbeat=0.05 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return sock


def test_a_subscriber_that_never_reads_does_not_delay_the_others(
    stack: Stack, collectors: list[Collector]
) -> None:
    reader = watcher(stack, collectors)
    stalled = [stalled_subscriber(stack) for _ in range(2)]
    try:
        wait_until(lambda: watch_stats(stack)["subscribers"] == 3)
        sessions = {f"d000000{i}-0000-4000-8000-000000000000": [] for i in range(4)}
        for turns in sessions.values():
            turns += [f"step {n} {BASH}" for n in range(40)]
        t0 = time.time()
        drive(stack, sessions)
        driven = time.time() - t0
        reader.wait_for(lambda evs: sum(e["type"] == "turn_end" for e in evs) == 160, timeout=30)
        live = [e for e in reader.events if e.get("session_id") in sessions]
        lags = [e["_received"] - (parse_iso(e["ts"]) or 0.0) for e in live]
        # Measured: from the core's event time to arrival at this subscriber.
        p50 = statistics.median(lags)
        p95 = statistics.quantiles(lags, n=20)[-1]
        print(f"\n{len(live)} events in {driven:.1f}s, lag p50 {p50 * 1e3:.1f} ms, "
              f"p95 {p95 * 1e3:.1f} ms, max {max(lags) * 1e3:.1f} ms")  # fmt: skip
        assert len(live) > 1000
        assert p95 < 0.25, f"p95 lag {p95:.3f}s with a stalled subscriber"
        # The stalled ones are still connected (their kernel buffers absorb this much; the
        # drop-and-count past that is tests/watch/test_hub.py's).
        assert watch_stats(stack)["subscribers"] == 3
    finally:
        for sock in stalled:
            sock.close()
    wait_until(lambda: watch_stats(stack)["subscribers"] == 1, timeout=10)


def test_disconnects_leave_no_tasks_behind(stack: Stack, collectors: list[Collector]) -> None:
    baseline = watch_stats(stack)
    assert baseline["subscribers"] == 0
    clients = [watcher(stack, collectors, None if i % 2 else "x") for i in range(4)]
    socks = [stalled_subscriber(stack) for _ in range(2)]
    wait_until(lambda: watch_stats(stack)["subscribers"] == 6)
    assert watch_stats(stack)["asyncio_tasks"] > baseline["asyncio_tasks"]
    drive(stack, {"e0000000-0000-4000-8000-00000000000e": [f"go {BASH}"]})
    for c in clients:
        c.close()
    collectors.clear()
    for sock in socks:
        sock.close()
    after = wait_until(
        lambda: (
            (s := watch_stats(stack))["subscribers"] == 0
            and s["asyncio_tasks"] <= baseline["asyncio_tasks"]
            and s
        ),
        timeout=20,
    )
    assert after["subscribed_total"] == 6


def test_client_reconnects_when_the_core_restarts(
    stack: Stack, collectors: list[Collector]
) -> None:
    c = watcher(stack, collectors)
    pid = stack.core_pid()
    os.kill(pid, signal.SIGKILL)  # the supervisor restarts it
    c.wait_for(lambda evs: any(e.get("state") == "reconnecting" for e in evs), timeout=15)
    wait_until(lambda: stack.core_up() and stack.core_pid() != pid, timeout=20)
    c.wait_for(
        lambda evs: (
            [e.get("state") for e in evs if e["type"] == "connection"][-1] == "connected"
            and [e["type"] for e in evs].count("hello") == 2
        ),
        timeout=20,
    )
    sid = "f0000000-0000-4000-8000-00000000000f"
    drive(stack, {sid: [f"after restart {BASH}"]})
    c.wait_for(lambda evs: any(e["type"] == "turn_end" and e["session_id"] == sid for e in evs))


def test_plain_output_when_not_a_tty(stack: Stack) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "clauditor", "watch", "--url", stack.api_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C's default even when this test runs in a background job, which starts its
        # children with SIGINT ignored (Python then never raises KeyboardInterrupt).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_until(lambda: watch_stats(stack)["subscribers"] == 1)
        drive(stack, {"90000000-0000-4000-8000-000000000009": [f"plain {BASH}"]})
        # Printed, not only published: the turn's end is the last line this test reads.
        wait_until(lambda: any(" turn_end " in line for line in lines), timeout=30)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)  # a loaded machine: the watch's 1 s client join, then exit
        reader.join(timeout=5)  # the rest of stdout, to its end
        assert proc.stderr is not None
        with proc.stderr:
            err = proc.stderr.read()
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == 0, err
    assert lines[0].split()[1:3] == ["-", "hello"]
    assert any(" 90000000 tool_use       Bash ls -la /tmp" in line for line in lines)
    assert any(" turn_end " in line and "completed" in line for line in lines)
    for line in lines:
        assert line[:24].endswith("Z") and line[10] == "T"  # ISO 8601 UTC first
    assert "connected" in err


def test_watch_exits_non_zero_when_the_core_is_unreachable() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "clauditor", "watch", "--url", f"http://127.0.0.1:{free_port()}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("clauditor: cannot reach the clauditor core at http://127.0.0.1:")
    assert proc.stdout == ""


def test_sse_wire_format(stack: Stack) -> None:
    """Raw bytes: one `data:` JSON line per event, heartbeat comments when quiet."""
    with contextlib.closing(socket.create_connection(("127.0.0.1", stack.api), 5)) as sock:
        sock.sendall(b"GET /watch?heartbeat=0.1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        sock.settimeout(5)
        data = b""
        deadline = time.monotonic() + 5
        while data.count(b": ping") < 2 and time.monotonic() < deadline:
            data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"content-type: text/event-stream" in head.lower()
    assert b"cache-control: no-cache" in head.lower()
    assert body.count(b": ping\n\n") >= 2
    # Chunk-size lines have no colon: the SSE reader ignores them like any unknown field.
    hello = next(parse_sse(body.decode().replace("\r\n", "\n").split("\n")))
    assert (hello["type"], hello["session_id"]) == ("hello", None)
