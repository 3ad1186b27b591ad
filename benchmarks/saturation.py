"""Capture under CPU saturation: N sessions with 0.2-2 MB bodies through `clauditor up`.

    python -m benchmarks.saturation                        # 16, 32 and 64 sessions, 40 s each
    python -m benchmarks.saturation --sessions 64 --seconds 20 --up-arg=--core-nice=0

For each level a fresh stack (the fake upstream in its own process, `clauditor up` with
its defaults: the core at nice 19) takes N sessions for `--seconds`; each session sends
its requests one after another on one keep-alive connection (a new prompt each, bodies
of 0.2-2 MB, 1-2 s streams), as a busy Claude Code does. The clients' own view is the
truth: a request is complete at the client when its 200 stream reached `message_stop`.
Once the clients stop, the core gets a bounded time to catch up, then each request the
clients completed is looked up in the core's history by its request-id:

- captured: recorded complete;
- unobserved / partial: recorded so (the core did not see the end of it);
- false errors: recorded as an error although the client got all of it;
- missing: not recorded at all (Envoy failed open, or the core never saw it);
- interrupted turns: turns recorded `interrupted` (every turn here completed).

Loopback only; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from benchmarks.workload import (
    Body,
    Shape,
    build_body,
    children,
    percentile,
    print_header,
    python_module,
    read_head,
    stop_process,
    table,
    wait_http,
)
from clauditor.envoy.admin import AdminClient, announced_socket
from clauditor.netaddr import free_port
from clauditor.sim.claude import SyntheticSession

HOST = "127.0.0.1"
MIX = (Shape(200_000, 200), Shape(500_000, 300), Shape(1_000_000, 300), Shape(2_000_000, 400))
EVENT_DELAY = 0.005  # seconds between SSE events: 1-2 s streams
MAX_CHUNKS = 100_000
MAX_HEAD_LINES = 200
SETTLE_TIMEOUT = 120.0
# Envoy counters worth printing: side streams failed open or reset, and back-pressure the
# side stream put on the request path (the client's upload or the upstream's response).
ENVOY_KEPT = (
    "ext_proc.streams_failed",
    "ext_proc.failure_mode_allowed",
    "clauditor_ext_proc.upstream_flow_control_backed_up_total",
    "clauditor_ext_proc.upstream_rq_active_overflow",
    "downstream_flow_control_paused_reading_total",
)  # how long the core may take to catch up once the clients stop


@dataclass
class Sent:
    session_id: str
    request_ids: list[str] = field(default_factory=list)  # complete at the client
    failed: int = 0  # not complete at the client (counted apart, not checked)
    latencies_ms: list[float] = field(default_factory=list)


@dataclass
class Result:
    sessions: int
    seconds: float
    sent: int = 0
    client_failed: int = 0
    captured: int = 0
    unobserved: int = 0
    partial: int = 0
    false_errors: int = 0
    missing: int = 0
    interrupted: int = 0
    p50_ms: float = float("nan")
    p95_ms: float = float("nan")
    settle_s: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)
    envoy: dict[str, int] = field(default_factory=dict)
    core_restarts: int = 0
    wire_errors: dict[str, int] = field(default_factory=dict)  # how side streams ended
    peak_mb: dict[str, float] = field(default_factory=dict)  # VmHWM of Envoy and the core
    priority: dict[str, object] = field(default_factory=dict)  # the core's adaptive nice


# -- the client -------------------------------------------------------------------------


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, body: Sequence[bytes]
) -> tuple[bool, str, bool]:
    """One request: (complete: a 200 stream up to message_stop, its request-id, keep-alive)."""
    writer.writelines([head, *body])
    await writer.drain()
    status, headers = await read_head(reader)
    tail = b""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        for _ in range(MAX_CHUNKS):
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            if size == 0:
                for _ in range(MAX_HEAD_LINES):
                    if await reader.readuntil(b"\r\n") == b"\r\n":
                        break
                break
            tail = (tail + await reader.readexactly(size))[-256:]
            await reader.readexactly(2)
    else:
        length = int(headers.get("content-length", "0"))
        tail = (await reader.readexactly(length))[-256:] if length else b""
    ok = status == 200 and b"event: message_stop" in tail
    keep = headers.get("connection", "").lower() != "close"
    return ok, headers.get("request-id", ""), keep


async def _session(
    port: int, bodies: Sequence[Body], index: int, until: float, nonces: itertools.count[int]
) -> Sent:
    await asyncio.sleep((index * 0.037) % 0.5)  # staggered, as real sessions are
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    async with SyntheticSession(f"http://{HOST}:{port}") as session:
        sent = Sent(session.session_id)
        for j in range(10_000):
            if time.monotonic() >= until:
                break
            body = bodies[(index + j) % len(bodies)]
            head = [
                (k, f"{HOST}:{port}" if k == "Host" else v) for k, v in session.headers(body.size)
            ]
            raw_head = "\r\n".join(
                ["POST /v1/messages?beta=true HTTP/1.1", *(f"{k}: {v}" for k, v in head)]
            )
            t0 = time.perf_counter()
            try:
                if conn is None:
                    conn = await asyncio.wait_for(
                        asyncio.open_connection(HOST, port, limit=1 << 22), 10
                    )
                ok, request_id, keep = await asyncio.wait_for(
                    _exchange(*conn, (raw_head + "\r\n\r\n").encode(), body.parts(next(nonces))),
                    60,
                )
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError):
                ok, request_id, keep = False, "", False
            if ok and request_id:
                sent.request_ids.append(request_id)
                sent.latencies_ms.append((time.perf_counter() - t0) * 1000)
            else:
                sent.failed += 1
            if (not keep or not ok) and conn is not None:
                conn[1].close()
                conn = None
        if conn is not None:
            conn[1].close()
        return sent


# -- the stack --------------------------------------------------------------------------


@dataclass
class Stack:
    tmp: Path
    up_args: Sequence[str]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    listen: int = 0
    api: int = 0
    admin: Path | None = None
    core_pid: int = 0

    def start(self) -> None:
        upstream = subprocess.Popen(
            python_module("benchmarks.upstream"), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE
        )
        self.procs.append(upstream)
        assert upstream.stdout is not None
        line = upstream.stdout.readline().decode().split()
        if len(line) != 2 or line[0] != "port":
            raise RuntimeError(f"fake upstream did not start: {line}")
        self.listen, grpc, self.api = (free_port() for _ in range(3))
        argv = python_module(
            "clauditor",
            "up",
            *("--listen", f"{HOST}:{self.listen}", "--grpc", f"{HOST}:{grpc}"),
            *("--api", f"{HOST}:{self.api}", "--upstream", f"http://{HOST}:{line[1]}"),
            *("--db", str(self.tmp / "clauditor.db"), "--log-level", "warning"),
            *("--claude-dir", str(self.tmp / "claude")),
            *self.up_args,
        )
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self.procs.append(proc)
        ready = threading.Event()

        def pump() -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                text = raw.decode(errors="replace").rstrip()
                self.log.append(text)
                self.admin = announced_socket(text) or self.admin
                if "Stop with Ctrl-C." in text:
                    ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(60):
            raise RuntimeError("clauditor up did not start:\n" + "\n".join(self.log[-30:]))
        wait_http(f"http://{HOST}:{self.api}/health")
        self.core_pid = int(self.stats()["pid"])
        assert self.core_pid in children(proc.pid)

    def stats(self) -> dict:
        return httpx.get(f"http://{HOST}:{self.api}/api/stats", timeout=10, trust_env=False).json()

    def envoy_stats(self) -> dict[str, int]:
        assert self.admin is not None
        found = AdminClient(self.admin).stats("ext_proc|flow_control|overflow")
        return {k: v for k, v in found.items() if v and any(w in k for w in ENVOY_KEPT)}

    def peak_mb(self) -> dict[str, float]:
        """Peak resident memory (VmHWM) of the core and Envoy, MiB."""
        up = self.procs[-1].pid
        out = {}
        for pid in children(up):
            name = "core" if pid == self.core_pid else "envoy"
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    out[name] = round(int(line.split()[1]) / 1024, 1)
        return out

    def settle(self, timeout: float) -> float:
        """Until the core holds no side stream and its store has written what it has (two
        polls in a row unchanged), bounded; the seconds it took."""
        t0 = time.monotonic()
        last: object = None
        while time.monotonic() - t0 < timeout:
            try:
                s = self.stats()
            except httpx.HTTPError:
                time.sleep(0.5)
                continue
            now = (s["wire"]["active"], [b["delivered"] for b in s["bus"]], s["store"])
            if s["wire"]["active"] == 0 and now == last:
                break
            last = now
            time.sleep(0.5)
        return time.monotonic() - t0

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop_process(proc, timeout=30)


# -- one level ----------------------------------------------------------------------------


def _recorded(db: Path) -> tuple[dict[str, tuple[str | None, str | None]], int, int]:
    """request_id -> (outcome, error_type) as stored, the interrupted turns, and the
    unobserved requests without a request-id (their response headers were never seen)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute("select request_id, outcome, error_type from requests").fetchall()
        (interrupted,) = conn.execute(
            "select count(*) from turns where outcome = 'interrupted'"
        ).fetchone()
    finally:
        conn.close()
    anonymous = sum(1 for r in rows if not r[0] and r[1] == "unobserved")
    return {r[0]: (r[1], r[2]) for r in rows if r[0]}, int(interrupted), anonymous


def run_level(sessions: int, seconds: float, up_args: Sequence[str], bodies: list[Body]) -> Result:
    result = Result(sessions, seconds)
    with tempfile.TemporaryDirectory(prefix="clauditor-saturation-") as tmp:
        stack = Stack(Path(tmp), up_args)
        try:
            stack.start()
            nonces = itertools.count(1)

            async def drive() -> list[Sent]:
                until = time.monotonic() + seconds
                return list(
                    await asyncio.gather(
                        *(_session(stack.listen, bodies, i, until, nonces) for i in range(sessions))
                    )
                )

            sent = asyncio.run(asyncio.wait_for(drive(), seconds + 120))
            result.settle_s = stack.settle(SETTLE_TIMEOUT)
            stats = stack.stats()
            pid = int(stats["pid"])
            result.wire_errors = stats["wire"]["errors_by_type"]
            result.priority = stats.get("priority") or {}
            result.core_restarts = int(pid != stack.core_pid)
            result.envoy = stack.envoy_stats()
            result.peak_mb = stack.peak_mb()
        finally:
            stack.stop()  # the core flushes its store on SIGTERM
        recorded, result.interrupted, anonymous = _recorded(Path(tmp) / "clauditor.db")
    latencies = [ms for s in sent for ms in s.latencies_ms]
    result.p50_ms, result.p95_ms = percentile(latencies, 50), percentile(latencies, 95)
    for s in sent:
        result.client_failed += s.failed
        for rid in s.request_ids:
            result.sent += 1
            outcome, error = recorded.get(rid, (None, None))
            if outcome is None and rid not in recorded:
                result.missing += 1
            elif outcome == "complete":
                result.captured += 1
            elif outcome == "unobserved":
                result.unobserved += 1
            elif outcome == "partial":
                result.partial += 1
            else:
                result.false_errors += 1
                result.errors[f"{outcome}/{error}"] += 1
    # Unobserved before their response headers, those rows have no request-id to match:
    # they account for as many of the unmatched requests.
    matched = min(anonymous, result.missing)
    result.unobserved += matched
    result.missing -= matched
    return result


def report(results: list[Result]) -> str:
    rows = [
        [
            r.sessions,
            r.sent,
            r.captured,
            f"{100 * r.captured / r.sent:.1f} %" if r.sent else "-",
            r.unobserved,
            r.partial,
            r.false_errors,
            r.missing,
            r.interrupted,
            r.client_failed,
            r.p50_ms,
            r.p95_ms,
            r.settle_s,
        ]
        for r in results
    ]
    headers = [
        "sessions",
        "sent",
        "captured",
        "rate",
        "unobserved",
        "partial",
        "false errors",
        "missing",
        "interrupted turns",
        "client failed",
        "client p50 ms",
        "p95 ms",
        "catch-up s",
    ]
    out = [table(headers, rows)]
    for r in results:
        if r.errors:
            out.append(f"{r.sessions} sessions, false errors: {dict(r.errors)}")
        if r.envoy:
            out.append(f"{r.sessions} sessions, Envoy: {r.envoy}")
        if r.peak_mb:
            out.append(f"{r.sessions} sessions, peak RSS MiB: {r.peak_mb}")
        if r.priority.get("raised"):
            out.append(f"{r.sessions} sessions, core priority: {r.priority}")
        if r.wire_errors:
            out.append(f"{r.sessions} sessions, side streams ended by: {r.wire_errors}")
        if r.core_restarts:
            out.append(f"{r.sessions} sessions: the supervisor restarted the core")
    return "\n".join(out)


async def _bodies() -> list[Body]:
    async with SyntheticSession(f"http://{HOST}:1") as template:
        return [build_body(template, shape, EVENT_DELAY) for shape in MIX]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", default="16,32,64", help="levels, comma-separated")
    parser.add_argument("--seconds", type=float, default=40.0, help="client time per level")
    parser.add_argument(
        "--up-arg",
        action="append",
        default=[],
        help="an extra `clauditor up` argument (repeatable), e.g. --up-arg=--core-nice=0",
    )
    args = parser.parse_args(argv)
    print_header("benchmarks.saturation", argv)
    levels = [int(x) for x in args.sessions.split(",") if x.strip()]
    bodies = asyncio.run(_bodies())
    results = []
    for n in levels:
        print(f"-- {n} sessions, {args.seconds:.0f} s", flush=True)
        results.append(run_level(n, args.seconds, args.up_arg, bodies))
        print(report(results[-1:]), flush=True)
    print()
    print(report(results))


if __name__ == "__main__":
    main()
