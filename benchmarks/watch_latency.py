"""Event latency of /watch: from a response chunk leaving the upstream (through Envoy, the
ext_proc tap, the interpreter, the tracker and the hub) to the event arriving at a /watch
subscriber. Prints p50 / p95 / p99 / max.

    python benchmarks/watch_latency.py [--sessions 4] [--turns 50] [--delay 0.005]

It starts the real stack (`clauditor up`: Envoy + core) against a tiny upstream of its own
that timestamps the exact chunks the events come from:
- tool_use: the chunk with the tool_use block's content_block_stop;
- request_end: the final chunk (message_stop and the end of the body).
The synthetic Claude Code sessions run in a child process, so building their requests does
not hold this process's GIL while it timestamps; chunk and arrival times are both taken here
with time.perf_counter(). Everything runs on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clauditor.sim.claude import SyntheticSession  # noqa: E402
from clauditor.watch.client import parse_sse  # noqa: E402
from tests.integration.stack import start_stack  # noqa: E402


def sse(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


class TimedUpstream:
    """A minimal Anthropic Messages endpoint that records when key chunks were sent."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.sent: dict[str, float] = {}  # tool_use id or request id -> perf_counter
        self.port = 0
        self._ids = itertools.count(1)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()
        server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._conn, "127.0.0.1", 0), self._loop
        ).result(10)
        self.port = server.sockets[0].getsockname()[1]

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if lines[0].startswith("HEAD"):
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    await writer.drain()
                    continue
                await self._reply(writer, json.loads(body))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _reply(self, writer: asyncio.StreamWriter, req: dict[str, Any]) -> None:
        n = next(self._ids)
        request_id = f"req_bench{n:08d}"
        last = req["messages"][-1]["content"]
        wants_tool = not any(isinstance(b, dict) and b.get("type") == "tool_result" for b in last)
        usage = {"input_tokens": 1000, "output_tokens": 1, "cache_read_input_tokens": 0}
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\nrequest-id: " + request_id.encode() + b"\r\n\r\n"
        )
        message = {
            "id": f"msg_{n}",
            "type": "message",
            "role": "assistant",
            "model": req["model"],
            "content": [],
            "stop_reason": None,
            "usage": usage,
        }
        events: list[tuple[bytes, str | None]] = [
            (sse("message_start", {"type": "message_start", "message": message}), None)
        ]
        if wants_tool:
            tool_id = f"toolu_bench{n:08d}"
            block = {"type": "tool_use", "id": tool_id, "name": "Bash", "input": {}}
            events += [
                (sse("content_block_start", {"type": "content_block_start", "index": 0,
                                             "content_block": block}), None),
                (sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                             "delta": {"type": "input_json_delta",
                                                       "partial_json": '{"command":"ls"}'}}),
                 None),
                (sse("content_block_stop", {"type": "content_block_stop", "index": 0}), tool_id),
            ]  # fmt: skip
            stop = "tool_use"
        else:
            block = {"type": "text", "text": ""}
            events += [
                (sse("content_block_start", {"type": "content_block_start", "index": 0,
                                             "content_block": block}), None),
                (sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                             "delta": {"type": "text_delta", "text": "done"}}),
                 None),
                (sse("content_block_stop", {"type": "content_block_stop", "index": 0}), None),
            ]  # fmt: skip
            stop = "end_turn"
        events += [
            (sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop},
                                   "usage": {"output_tokens": 5}}), None),
        ]  # fmt: skip
        for data, key in events:
            writer.write(chunk(data))
            await writer.drain()
            if key is not None:
                self.sent[key] = time.perf_counter()
            await asyncio.sleep(self.delay)
        writer.write(chunk(sse("message_stop", {"type": "message_stop"})) + b"0\r\n\r\n")
        await writer.drain()
        self.sent[request_id] = time.perf_counter()


class Subscriber:
    def __init__(self, url: str) -> None:
        self.url = url
        self.arrived: dict[str, float] = {}
        self.connected = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self._read()
        except httpx.HTTPError:
            if not self.stop.is_set():  # the stack stopping ends the stream: not news
                raise

    def _read(self) -> None:
        with (
            httpx.Client(timeout=None, trust_env=False) as client,
            client.stream("GET", f"{self.url}/watch") as resp,
        ):
            for event in parse_sse(resp.iter_lines()):
                now = time.perf_counter()
                kind = event.get("type")
                if kind == "hello":
                    self.connected.set()
                elif kind == "tool_use" and not event.get("replay"):
                    self.arrived[event["tool_use_id"]] = now
                elif kind == "request_end" and event.get("request_id"):
                    self.arrived[event["request_id"]] = now
                if self.stop.is_set():
                    return


def percentiles(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return (
        f"n={len(ms):4d}  p50 {statistics.median(ms):6.2f} ms  p95 {q[94]:6.2f} ms  "
        f"p99 {q[98]:6.2f} ms  max {ms[-1]:6.2f} ms"
    )


async def drive(proxy: str, sessions: int, turns: int) -> None:
    async def one(i: int) -> None:
        async with SyntheticSession(proxy) as s:
            for t in range(turns):
                await s.turn(f"bench {i}.{t}")

    await asyncio.gather(*(one(i) for i in range(sessions)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=3)
    ap.add_argument("--turns", type=int, default=40)
    ap.add_argument("--delay", type=float, default=0.02, help="seconds between SSE chunks")
    ap.add_argument(
        "--stalled", type=int, default=0, help="extra /watch subscribers that never read"
    )
    ap.add_argument("--drive", metavar="PROXY", help=argparse.SUPPRESS)  # the child's job
    args = ap.parse_args()
    if args.drive:
        asyncio.run(drive(args.drive, args.sessions, args.turns))
        return 0

    upstream = TimedUpstream(args.delay)
    upstream.start()
    with tempfile.TemporaryDirectory(prefix="clauditor-bench-") as tmp:
        stack = start_stack(f"http://127.0.0.1:{upstream.port}", Path(tmp))
        try:
            sub = Subscriber(stack.api_url)
            sub.thread.start()
            if not sub.connected.wait(10):
                raise SystemExit("no /watch connection")
            stalled = []
            for _ in range(args.stalled):
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
                sock.connect(("127.0.0.1", stack.api))
                sock.sendall(b"GET /watch HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                stalled.append(sock)
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, __file__, "--drive", stack.proxy_url,
                 "--sessions", str(args.sessions), "--turns", str(args.turns)],
                check=True,
            )  # fmt: skip
            elapsed = time.perf_counter() - t0
            expected = set(upstream.sent)
            deadline = time.monotonic() + 10
            while not expected <= set(sub.arrived) and time.monotonic() < deadline:
                time.sleep(0.05)
            sub.stop.set()
            for sock in stalled:
                sock.close()
        finally:
            stack.stop()
    tools = [sub.arrived[k] - t for k, t in upstream.sent.items() if k.startswith("toolu_")]
    ends = [
        sub.arrived[k] - t
        for k, t in upstream.sent.items()
        if k.startswith("req_") and k in sub.arrived
    ]
    missing = len(expected - set(sub.arrived))
    print(
        f"{args.sessions} sessions x {args.turns} turns ({len(upstream.sent)} timed chunks) "
        f"in {elapsed:.1f}s; chunk gap {args.delay * 1000:.0f} ms; "
        f"{args.stalled} stalled subscribers; missing {missing}"
    )
    print(f"tool_use    (content_block_stop chunk → event)  {percentiles(tools)}")
    print(f"request_end (final chunk → event)               {percentiles(ends)}")
    print(f"all                                             {percentiles(tools + ends)}")
    return 0 if missing == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
