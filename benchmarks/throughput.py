"""Throughput and cost of the core: SSE events per CPU second, CPU seconds per 1,000
events, resident memory at 0/10/50/200 live sessions, SQLite write latency.

    python -m benchmarks.throughput --quick   # CI-sized, well under a minute
    python -m benchmarks.throughput           # the run of docs/performance.md

Sections (`--only` picks some):
- parse:    SSEDecoder + StreamFold (ResponseParser) alone over recorded SSE bytes, one
            chunk per event as Envoy hands them on at realistic pacing.
- pipeline: the core in-process, wire to store: ExtProcServicer.Process fed protobuf
            messages (no network) -> interpreter -> bus -> tracker -> store + watch hub.
            CPU from time.process_time (all threads, the store writer's included).
- grpc:     a real `clauditor serve` process fed over gRPC by a client that speaks to it
            as Envoy does in observability mode; the core's CPU read from /proc.
- rss:      VmRSS of that process at 0, 10, 50 and 200 live sessions.
- sqlite:   the store writer's batch transactions, timed during the pipeline run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx

from benchmarks.workload import (
    Body,
    Shape,
    build_body,
    cpu_seconds,
    machine,
    percentile,
    python_module,
    rss_mb,
    stop_process,
    table,
    until_core_idle,
    wait_http,
)
from clauditor.netaddr import HostPort, free_port
from clauditor.parsing.response import ResponseParser
from clauditor.sim.claude import SyntheticSession
from clauditor.sim.replies import Reply, ToolCall
from clauditor.sim.server import FakeUpstream
from clauditor.wire import protocol as pb

HOST = "127.0.0.1"
BODY_CHUNK = 512 * 1024  # Envoy hands a 2 MB body to ext_proc in ~4 messages
RSS_POINTS = (0, 10, 50, 200)


# -- recorded traffic -------------------------------------------------------------------


@dataclass(frozen=True)
class Recording:
    """One response as the fake upstream sent it, cut into one chunk per SSE event."""

    headers: list[tuple[str, str]]
    events: list[bytes]


def _split_events(raw: bytes) -> list[bytes]:
    parts = raw.split(b"\n\n")
    return [p + b"\n\n" for p in parts if p]


def record_responses() -> list[Recording]:
    """Record real SSE bytes from the fake upstream: thinking + text, text + two tool
    calls, and one long text stream (about 2,600 events together)."""
    words = "Claude reads the code, edits a file and runs the tests again. "
    replies = [
        Reply(thinking="Let me think. " * 40, text=words * 60, text_chunks=400),
        Reply(
            text=words * 20,
            text_chunks=150,
            tool_calls=[
                ToolCall("Read", {"file_path": "/home/dev/project/src/app.py"}),
                ToolCall("Bash", {"command": "pytest -q tests/", "description": "run tests"}),
            ],
        ),
        Reply(text=words * 800, text_chunks=2000),
    ]
    out: list[Recording] = []
    upstream = FakeUpstream()
    with upstream.running_in_thread():
        upstream.script("*", replies)
        body = {
            "model": "claude-opus-4-8",
            "max_tokens": 1000,
            "stream": True,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "go"}]}],
        }
        with httpx.Client(timeout=30, trust_env=False) as client:
            for _ in replies:
                client.post(f"{upstream.url}/v1/messages", json=body).raise_for_status()
        for ex in upstream.wait_for(len(replies), timeout=30):
            headers = [
                (":status", str(ex.status)),
                *((k.lower(), v) for k, v in ex.response_headers),
            ]
            out.append(Recording(headers, _split_events(ex.response_bytes)))
    return out


def bench_parse(recordings: Sequence[Recording], seconds: float) -> list[list[object]]:
    """Events per CPU second of ResponseParser (SSE decoding + fold), whole streams."""
    rows = []
    for label, recs in (
        ("mix (3 streams)", recordings),
        ("text only, 2,000 events", recordings[-1:]),
    ):
        events = 0
        t0 = time.process_time()
        deadline = time.perf_counter() + seconds
        for _ in range(100_000):
            for rec in recs:
                parser = ResponseParser(200, "text/event-stream", None)
                for chunk in rec.events:
                    parser.feed(chunk)
                result = parser.finish()
                events += result.events
            if time.perf_counter() > deadline:
                break
        cpu = time.process_time() - t0
        rows.append([label, events, cpu, events / cpu, cpu / events * 1000])
    return rows


# -- Envoy-shaped ext_proc messages -------------------------------------------------------


def _header_map(headers: Sequence[tuple[str, str]]) -> Any:
    return pb.HeaderMap(headers=[pb.HeaderValue(key=k, raw_value=v.encode()) for k, v in headers])


def exchange_messages(
    session: SyntheticSession, body: Body, nonce: int, rec: Recording
) -> list[pb.ProcessingRequest]:
    """What Envoy sends for one streamed /v1/messages exchange in observability mode."""
    data = b"".join(body.parts(nonce))
    request_headers = [
        (":authority", "api.anthropic.com"),
        (":path", "/v1/messages?beta=true"),
        (":method", "POST"),
        (":scheme", "https"),
        *((k.lower(), v) for k, v in session.headers(len(data)) if k.lower() != "host"),
    ]
    obs = {"observability_mode": True}
    msgs = [
        pb.ProcessingRequest(
            request_headers=pb.HttpHeaders(headers=_header_map(request_headers)), **obs
        )
    ]
    for i in range(0, len(data), BODY_CHUNK):
        last = i + BODY_CHUNK >= len(data)
        chunk = pb.HttpBody(body=data[i : i + BODY_CHUNK], end_of_stream=last)
        msgs.append(pb.ProcessingRequest(request_body=chunk, **obs))
    msgs.append(
        pb.ProcessingRequest(response_headers=pb.HttpHeaders(headers=_header_map(rec.headers)))
    )
    for event in rec.events:
        msgs.append(pb.ProcessingRequest(response_body=pb.HttpBody(body=event), **obs))
    msgs.append(pb.ProcessingRequest(response_body=pb.HttpBody(end_of_stream=True), **obs))
    return msgs


@dataclass
class Plan:
    """sessions x requests exchanges; each request a body and a recorded response."""

    exchanges: list[list[pb.ProcessingRequest]]
    events: int
    body_bytes: int


def make_plan(
    sessions: int,
    per_session: int,
    bodies: Sequence[Body],
    recordings: Sequence[Recording],
    first_nonce: int = 1,
) -> Plan:
    out: list[list[pb.ProcessingRequest]] = []
    events = body_bytes = 0
    nonce = first_nonce
    for s in range(sessions):
        session = SyntheticSession(f"http://{HOST}:1", session_id=str(uuid.uuid4()))
        for j in range(per_session):
            body = bodies[(s + j) % len(bodies)]
            rec = recordings[(s + j) % len(recordings)]
            out.append(exchange_messages(session, body, nonce, rec))
            nonce += 1
            events += len(rec.events)
            body_bytes += body.size
    return Plan(out, events, body_bytes)


async def _aiter(msgs: Sequence[pb.ProcessingRequest]) -> AsyncIterator[pb.ProcessingRequest]:
    for m in msgs:
        yield m


def cost_row(plan: Plan, wall: float, cpu: float) -> list[object]:
    """exchanges, events, body MB, wall s, CPU s, events/CPU s, CPU s/1k ev, CPU ms/exchange."""
    n = len(plan.exchanges)
    return [
        n,
        plan.events,
        plan.body_bytes / 1e6,
        wall,
        cpu,
        plan.events / cpu,
        cpu / plan.events * 1000,
        cpu / n * 1000,
    ]


async def replay(
    plan: Plan,
    concurrency: int,
    one: Callable[[list[pb.ProcessingRequest]], Awaitable[None]],
) -> None:
    """Every exchange of the plan through `one`, `concurrency` side streams at a time."""
    queue: asyncio.Queue[list[pb.ProcessingRequest]] = asyncio.Queue()
    for ex in plan.exchanges:
        queue.put_nowait(ex)

    async def worker() -> None:
        while not queue.empty():
            await one(queue.get_nowait())

    await asyncio.gather(*(worker() for _ in range(concurrency)))


class _Context:
    """Enough of grpc.aio.ServicerContext for ExtProcServicer.Process."""

    def cancelled(self) -> bool:
        return False


async def bench_pipeline(
    plan: Plan, db: Path, concurrency: int
) -> tuple[list[object], list[tuple[int, float]]]:
    """The core in-process; returns a row and the store writer's (rows, seconds) batches."""
    from clauditor.core import Core, CoreConfig

    core = Core(CoreConfig(grpc=HostPort(HOST, 0), api=HostPort(HOST, free_port()), db=db))
    batches: list[tuple[int, float]] = []
    write = core.store.writer._write

    def timed_write(conn: Any, pending: dict[Any, Any]) -> None:
        t0 = time.perf_counter()
        write(conn, pending)
        batches.append((len(pending), time.perf_counter() - t0))

    core.store.writer._write = timed_write  # type: ignore[method-assign]
    await core.start()
    try:
        gc.collect()

        async def one(msgs: list[pb.ProcessingRequest]) -> None:
            async for _ in core.servicer.Process(_aiter(msgs), _Context()):  # type: ignore[arg-type]
                pass

        t0, c0 = time.perf_counter(), time.process_time()
        await replay(plan, concurrency, one)
        await core.bus.drain(timeout=120)
        await asyncio.to_thread(core.store.writer.flush, 120)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        await core.stop()
    return cost_row(plan, wall, cpu), batches


# -- a real core process over gRPC --------------------------------------------------------


class CoreProcess:
    def __init__(self, tmp: Path) -> None:
        self.grpc, self.api = free_port(), free_port()
        argv = python_module(
            "clauditor",
            "serve",
            *("--grpc", f"{HOST}:{self.grpc}", "--api", f"{HOST}:{self.api}"),
            *("--db", str(tmp / "serve.db"), "--log-level", "warning"),
        )
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        wait_http(f"http://{HOST}:{self.api}/health")
        self.pid = self.proc.pid

    def stats(self) -> dict[str, Any]:
        return httpx.get(f"http://{HOST}:{self.api}/api/stats", timeout=5, trust_env=False).json()

    def wait_idle(self, timeout: float = 120.0) -> None:
        until_core_idle(self.stats, timeout, interval=0.5)

    def stop(self) -> None:
        stop_process(self.proc)


async def drive_grpc(port: int, plan: Plan, concurrency: int) -> float:
    """Replay the plan's exchanges as Envoy's side streams; returns the wall time."""
    async with grpc.aio.insecure_channel(
        f"{HOST}:{port}", options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]
    ) as channel:
        process = channel.stream_stream(
            f"/{pb.SERVICE}/{pb.METHOD}",
            request_serializer=pb.ProcessingRequest.SerializeToString,
            response_deserializer=pb.ProcessingResponse.FromString,
        )

        async def one(msgs: list[pb.ProcessingRequest]) -> None:
            async for _ in process(_aiter(msgs)):
                pass

        t0 = time.perf_counter()
        await replay(plan, concurrency, one)
        return time.perf_counter() - t0


def bench_grpc(core: CoreProcess, plan: Plan, concurrency: int) -> list[object]:
    c0 = cpu_seconds(core.pid)
    wall = asyncio.run(drive_grpc(core.grpc, plan, concurrency))
    core.wait_idle()
    cpu = cpu_seconds(core.pid) - c0
    return [*cost_row(plan, wall, cpu), plan.events / wall]


def bench_rss(
    core: CoreProcess, bodies: Sequence[Body], recordings: Sequence[Recording], per_session: int
) -> list[list[object]]:
    rows: list[list[object]] = []
    done = 0
    nonce = 10_000_000
    core.wait_idle()
    for target in RSS_POINTS:
        if target > done:
            plan = make_plan(target - done, per_session, bodies, recordings, nonce)
            nonce += len(plan.exchanges)
            asyncio.run(drive_grpc(core.grpc, plan, 8))
            del plan
            core.wait_idle()
            done = target
        live = core.stats()["tracker"]["live_sessions"]
        hwm = 0.0
        for line in Path(f"/proc/{core.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024
        rows.append([target, live, rss_mb(core.pid), hwm])
    return rows


# -- main ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="CI-sized run")
    p.add_argument("--only", default="parse,pipeline,grpc,rss,sqlite", help="sections to run")
    p.add_argument("--concurrency", type=int, default=8, help="concurrent side streams")
    p.add_argument("--json", type=Path, default=None, help="write the numbers here")
    args = p.parse_args(argv)
    only = set(args.only.split(","))
    given = argv if argv is not None else sys.argv[1:]
    print(f"machine: {machine()}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}")
    print(f"command: python -m benchmarks.throughput {' '.join(given)}")

    recordings = record_responses()
    print(
        f"recorded {sum(len(r.events) for r in recordings)} SSE events in {len(recordings)} streams"
    )
    results: dict[str, Any] = {}

    async def make_bodies(shapes: Sequence[Shape]) -> list[Body]:
        async with SyntheticSession(f"http://{HOST}:1") as builder:
            return [build_body(builder, s, 0.0) for s in shapes]

    # Events alone (small bodies) and bodies alone (short responses), then the mix.
    small = asyncio.run(make_bodies([Shape(50_000, 0)]))
    mix = asyncio.run(
        make_bodies([Shape(n, 0) for n in (50_000, 200_000, 500_000, 100_000, 2_000_000)])
    )
    big = asyncio.run(make_bodies([Shape(2_000_000, 0)]))
    short = [Recording(recordings[1].headers, recordings[1].events[:3] + recordings[1].events[-3:])]
    scale = 1 if args.quick else 4
    plans = {
        "events: 50 KB bodies, recorded streams": (small, recordings, 6 * scale),
        "bodies: 2 MB bodies, 6-event responses": (big, short, 6 * scale),
        "mix: 50 KB-2 MB bodies, recorded streams": (mix, recordings, 6 * scale),
    }
    headers = ["workload", "exchanges", "events", "body MB", "wall s", "CPU s", "events/CPU s"]
    headers += ["CPU s/1k ev", "CPU ms/exchange"]

    if "parse" in only:
        rows = bench_parse(recordings, 2.0 if args.quick else 10.0)
        results["parse"] = rows
        print("\nparse: ResponseParser (SSEDecoder + StreamFold), one chunk per event")
        print(table(["stream", "events", "CPU s", "events/CPU s", "CPU s/1k ev"], rows))

    batches: list[tuple[int, float]] = []
    if "pipeline" in only or "sqlite" in only:
        rows = []
        with tempfile.TemporaryDirectory(prefix="clauditor-bench-") as tmp:
            for i, (label, (bodies, recs, sessions)) in enumerate(plans.items()):
                plan = make_plan(sessions, 4, bodies, recs)
                row, got = asyncio.run(
                    bench_pipeline(plan, Path(tmp) / f"p{i}.db", args.concurrency)
                )
                batches += got
                rows.append([label, *row])
        results["pipeline"] = rows
        print("\npipeline: the core in-process (servicer -> interpreter -> tracker -> store)")
        print(table(headers, rows))

    if "sqlite" in only and batches:
        sizes = [n for n, _ in batches]
        ms = [s * 1000 for _, s in batches]
        per_row = [s * 1e6 / n for n, s in batches if n]
        row = [
            len(batches),
            percentile(sizes, 50),
            max(sizes),
            percentile(ms, 50),
            percentile(ms, 95),
            percentile(ms, 99),
            max(ms),
            percentile(per_row, 50),
        ]
        results["sqlite"] = row
        print("\nsqlite: store writer batch transactions (upserts + recall refresh), in ms")
        print("  a row is durable at most flush interval (0.5 s) + one batch after it is queued")
        print(
            table(
                ["batches", "rows p50", "rows max", "p50", "p95", "p99", "max", "us/row p50"],
                [row],
            )
        )

    if only & {"grpc", "rss"}:
        with tempfile.TemporaryDirectory(prefix="clauditor-bench-") as tmp:
            core = CoreProcess(Path(tmp))
            try:
                if "grpc" in only:
                    rows = []
                    for label, (bodies, recs, sessions) in plans.items():
                        plan = make_plan(sessions, 4, bodies, recs, first_nonce=len(rows) * 10**6)
                        rows.append([label, *bench_grpc(core, plan, args.concurrency)])
                    results["grpc"] = rows
                    print("\ngrpc: a real `clauditor serve`, fed over gRPC; core CPU from /proc")
                    print(table([*headers, "events/wall s"], rows))
                if "rss" in only:
                    with tempfile.TemporaryDirectory(prefix="clauditor-rss-") as tmp2:
                        rss_core = CoreProcess(Path(tmp2)) if "grpc" in only else core
                        try:
                            rows = bench_rss(rss_core, mix, recordings, 2 if args.quick else 4)
                        finally:
                            if rss_core is not core:
                                rss_core.stop()
                    results["rss"] = rows
                    print("\nrss: a fresh `clauditor serve`, sessions driven over gRPC")
                    print(table(["sessions driven", "live", "VmRSS MB", "VmHWM MB"], rows))
            finally:
                core.stop()
    if args.json:
        args.json.write_text(json.dumps(results, default=str))


if __name__ == "__main__":
    main()
