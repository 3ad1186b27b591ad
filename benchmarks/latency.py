"""Added latency: the same streamed requests (a) straight to the fake upstream, (b) through
Envoy without ext_proc, (c) through `clauditor up`, (hung) (c) with the core SIGSTOPped,
(peer) through LiteLLM's proxy; time to first byte and total time at several concurrencies.

    python -m benchmarks.latency --quick      # CI-sized, about 70 s
    python -m benchmarks.latency              # the full run of docs/performance.md (~13 min)

Every setup is up for the whole run and the levels are measured back to back, so the
ratios compare numbers from the same run on the same machine state.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import yaml

from benchmarks.workload import (
    Body,
    Shape,
    build_body,
    children,
    cpu_seconds,
    percentile,
    print_header,
    python_module,
    read_head,
    stop_process,
    table,
    until_core_idle,
    wait_for,
    wait_http,
)
from clauditor.envoy.admin import AdminClient, announced_socket
from clauditor.envoy.config import EnvoySettings, Upstream, render
from clauditor.netaddr import HostPort, free_port
from clauditor.sim.claude import SyntheticSession
from clauditor.supervisor import find_envoy

HOST = "127.0.0.1"
MAX_CHUNKS = 100_000  # per response; a 2,000-event stream has ~2,000
MAX_HEAD_LINES = 200
LITELLM_DEFAULT = "/tmp/litellm-venv/bin/litellm"
LITELLM_KEY = "sk-bench-" + uuid.uuid4().hex  # the proxy refuses to start without a key

FULL_MIX = (
    Shape(50_000, 50),
    Shape(200_000, 200),
    Shape(500_000, 500),
    Shape(2_000_000, 2_000),
    Shape(100_000, 100),
    Shape(1_000_000, 300),
)
QUICK_MIX = (Shape(50_000, 50), Shape(200_000, 200), Shape(2_000_000, 500), Shape(500_000, 100))


@dataclass
class Target:
    name: str
    port: int
    path: str = "/v1/messages?beta=true"
    extra_headers: tuple[tuple[str, str], ...] = ()
    pids: tuple[int, ...] = ()  # processes whose CPU we charge to this setup

    def head(self, session: SyntheticSession, length: int) -> bytes:
        headers = [
            (k, f"{HOST}:{self.port}" if k == "Host" else v)
            for k, v in session.headers(length)
            if k != "x-api-key" or not self.extra_headers
        ]
        lines = [f"POST {self.path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers)]
        lines += [f"{k}: {v}" for k, v in self.extra_headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass
class Sample:
    setup: str
    concurrency: int
    body_bytes: int
    events: int
    ttfb_ms: float
    total_ms: float
    ok: bool
    error: str = ""


@dataclass
class Level:
    setup: str
    concurrency: int
    samples: list[Sample] = field(default_factory=list)
    wall_s: float = 0.0
    cpu_s: dict[str, float] = field(default_factory=dict)  # process name -> CPU seconds
    note: str = ""

    @property
    def ok(self) -> list[Sample]:
        return [s for s in self.samples if s.ok]

    def pct(self, attr: str, q: float) -> float:
        return percentile([getattr(s, attr) for s in self.ok], q)

    @property
    def events(self) -> int:
        return sum(s.events for s in self.ok)


# -- the client ------------------------------------------------------------------------


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, body: Sequence[bytes]
) -> tuple[float, float, bool, bool]:
    """One request; (ms to the first body byte, ms to the end, a full SSE stream, keep-alive)."""
    t0 = time.perf_counter()
    writer.writelines([head, *body])
    await writer.drain()
    status, headers = await read_head(reader)
    first: float | None = None
    tail = b""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        for _ in range(MAX_CHUNKS):
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            if size == 0:
                for _ in range(MAX_HEAD_LINES):  # trailers up to the blank line
                    if await reader.readuntil(b"\r\n") == b"\r\n":
                        break
                break
            data = await reader.readexactly(size)
            if first is None:
                first = time.perf_counter()
            tail = (tail + data)[-256:]
            await reader.readexactly(2)
    else:
        length = int(headers.get("content-length", "0"))
        if length:
            data = await reader.readexactly(length)
            first = time.perf_counter()
            tail = data[-256:]
    end = time.perf_counter()
    ok = status == 200 and b"event: message_stop" in tail
    keep = headers.get("connection", "").lower() != "close"
    return ((first or end) - t0) * 1000, (end - t0) * 1000, ok, keep


async def run_session(
    target: Target,
    bodies: Sequence[Body],
    index: int,
    count: int,
    concurrency: int,
    delay: float,
    nonces: itertools.count[int],
) -> list[Sample]:
    """One Claude Code session: its own keep-alive connection, `count` requests in a row."""
    await asyncio.sleep((index * 0.037) % 0.5)  # stagger, as real sessions are
    out: list[Sample] = []
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    async with SyntheticSession(f"http://{HOST}:{target.port}") as session:
        for j in range(count):
            body = bodies[(index + j) % len(bodies)]
            shape = body.shape
            timeout = 30.0 + shape.events * delay * 10
            sample = Sample(target.name, concurrency, body.size, shape.events, 0.0, 0.0, False)
            try:
                if conn is None:
                    conn = await asyncio.wait_for(
                        asyncio.open_connection(HOST, target.port, limit=1 << 22), 10
                    )
                head = target.head(session, body.size)
                ttfb, total, ok, keep = await asyncio.wait_for(
                    exchange(*conn, head, body.parts(next(nonces))), timeout
                )
                sample.ttfb_ms, sample.total_ms, sample.ok = ttfb, total, ok
                if not ok:
                    sample.error = "bad response"
                if not keep or not ok:
                    conn[1].close()
                    conn = None
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as e:
                sample.error = type(e).__name__
                if conn is not None:
                    conn[1].close()
                    conn = None
            out.append(sample)
    if conn is not None:
        conn[1].close()
    return out


async def run_level(
    target: Target,
    bodies: Sequence[Body],
    concurrency: int,
    per_session: int,
    delay: float,
    nonces: itertools.count[int],
) -> Level:
    level = Level(target.name, concurrency)
    t0 = time.perf_counter()
    results = await asyncio.gather(
        *(
            run_session(target, bodies, i, per_session, concurrency, delay, nonces)
            for i in range(concurrency)
        )
    )
    level.wall_s = time.perf_counter() - t0
    level.samples = [s for r in results for s in r]
    return level


# -- the setups -------------------------------------------------------------------------


def plain_envoy_config(settings: EnvoySettings) -> str:
    """clauditor's own rendered config with the ext_proc filter (and its cluster) removed."""
    config = yaml.safe_load(render(settings))
    listener = config["static_resources"]["listeners"][0]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    before = len(hcm["http_filters"])
    hcm["http_filters"] = [f for f in hcm["http_filters"] if "ext_proc" not in f["name"]]
    assert len(hcm["http_filters"]) == before - 1, "the template's ext_proc filter moved"
    clusters = config["static_resources"]["clusters"]
    config["static_resources"]["clusters"] = [c for c in clusters if "ext_proc" not in c["name"]]
    return yaml.safe_dump(config, sort_keys=False)


@dataclass
class Stack:
    tmp: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    targets: dict[str, Target] = field(default_factory=dict)
    upstream_port: int = 0
    core_pid: int = 0
    api_port: int = 0
    admin: Path | None = None  # (c)'s Envoy admin socket, as `up` announced it
    log: list[str] = field(default_factory=list)

    def spawn(self, argv: list[str], **kw: object) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop_process(proc)

    # (a)
    def start_upstream(self) -> None:
        proc = self.spawn(python_module("benchmarks.upstream"), stdout=subprocess.PIPE)
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().split()
        if len(line) != 2 or line[0] != "port":
            raise RuntimeError(f"fake upstream did not start: {line}")
        self.upstream_port = int(line[1])
        self.targets["a"] = Target("a", self.upstream_port, pids=(proc.pid,))

    # (b)
    def start_plain_envoy(self, name: str = "b") -> None:
        listen = free_port()
        admin = self.tmp / f"envoy-plain-{name}.sock"
        settings = EnvoySettings(
            listen=HostPort(HOST, listen),
            admin=admin,
            grpc=HostPort(HOST, free_port()),
            upstream=Upstream("http", HOST, self.upstream_port),
        )
        path = self.tmp / f"envoy-plain-{name}.yaml"
        path.write_text(plain_envoy_config(settings))
        argv = [find_envoy(None), "-c", str(path), "--disable-hot-restart"]
        proc = self.spawn([*argv, "--log-level", "warning"])
        wait_for(AdminClient(admin, timeout=1.0).ready, f"Envoy's admin at {admin}")
        self.targets[name] = Target(name, listen, pids=(proc.pid,))

    # (c)
    def start_clauditor(self) -> None:
        listen, grpc, api = (free_port() for _ in range(3))
        argv = python_module(
            "clauditor",
            "up",
            *("--listen", f"{HOST}:{listen}", "--grpc", f"{HOST}:{grpc}"),
            *("--api", f"{HOST}:{api}"),
            *("--upstream", f"http://{HOST}:{self.upstream_port}"),
            *("--db", str(self.tmp / "clauditor.db"), "--log-level", "warning"),
        )
        proc = self.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        ready = threading.Event()

        def pump() -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.decode(errors="replace").rstrip()
                self.log.append(line)
                self.admin = announced_socket(line) or self.admin
                if "Stop with Ctrl-C." in line:  # the announcement's last line
                    ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(60):
            raise RuntimeError("clauditor up did not start:\n" + "\n".join(self.log[-30:]))
        self.api_port = api
        wait_http(f"http://{HOST}:{api}/health")
        self.core_pid = int(self.stats()["pid"])
        envoy = [p for p in children(proc.pid) if p != self.core_pid]
        self.targets["c"] = Target("c", listen, pids=(self.core_pid, *envoy))

    def stats(self, timeout: float = 30.0) -> dict[str, object]:
        """The core's /api/stats; retried while the supervisor restarts a dead core."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return httpx.get(f"http://{HOST}:{self.api_port}/api/stats", timeout=5).json()
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    tail = "\n".join(self.log[-30:])
                    msg = f"the core's API is gone; clauditor up said:\n{tail}"
                    raise RuntimeError(msg) from None
                time.sleep(0.2)

    def check_core(self) -> str:
        """'' while the core is the one we started; a warning once it was restarted."""
        pid = int(self.stats()["pid"])  # type: ignore[call-overload]
        if pid == self.core_pid:
            return ""
        old, self.core_pid = self.core_pid, pid
        target = self.targets["c"]
        target.pids = (pid, *target.pids[1:])
        return f"the core was restarted during this level (pid {old} -> {pid})"

    def envoy_ext_proc_stats(self) -> dict[str, int]:
        """Envoy's ext_proc counters and its flow-control ones: a side stream that backs up
        makes Envoy pause reading the client's request or the upstream's response."""
        assert self.admin is not None
        found = AdminClient(self.admin).stats("ext_proc|flow_control")
        return {k.replace("http.clauditor.ext_proc.", ""): v for k, v in found.items() if v}

    def wait_core_idle(self, timeout: float = 30.0) -> None:
        until_core_idle(self.stats, timeout, interval=0.3)  # type: ignore[arg-type]

    # peer
    def start_litellm(self, exe: str) -> None:
        port = free_port()
        env = {
            **os.environ,
            "LITELLM_MASTER_KEY": LITELLM_KEY,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of the price list at start
            "ANTHROPIC_API_BASE": f"http://{HOST}:{self.upstream_port}",
            "ANTHROPIC_API_KEY": "sk-ant-test-fake",
        }
        argv = [exe, "--host", HOST, "--port", str(port)]
        log = (self.tmp / "litellm.log").open("wb")
        proc = self.spawn(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.tmp)
        wait_http(f"http://{HOST}:{port}/health/liveliness", timeout=120)
        self.targets["peer"] = Target(
            "peer",
            port,
            path="/anthropic/v1/messages?beta=true",
            extra_headers=(("x-api-key", LITELLM_KEY),),
            pids=(proc.pid,),
        )


# -- the run -----------------------------------------------------------------------------


def _cpu(target: Target) -> dict[int, float]:
    out = {}
    for pid in target.pids:
        try:
            out[pid] = cpu_seconds(pid)
        except OSError:
            out[pid] = 0.0
    return out


async def measure(
    stack: Stack,
    target: Target,
    bodies: Sequence[Body],
    concurrency: int,
    per_session: int,
    delay: float,
    nonces: itertools.count[int],
    label: str | None = None,
) -> Level:
    before = _cpu(target)
    names = {pid: "core" if pid == stack.core_pid else target.name for pid in target.pids}
    level = await run_level(target, bodies, concurrency, per_session, delay, nonces)
    if "c" in stack.targets and target.name == "c":
        await asyncio.to_thread(stack.wait_core_idle)
        level.note = await asyncio.to_thread(stack.check_core)
        if level.note:
            print(f"  WARNING: {level.note}; its CPU numbers are incomplete", flush=True)
            print("\n".join(stack.log[-20:]), flush=True)
    after = _cpu(target)
    for pid, name in names.items():  # a restarted core's CPU is lost with it (see the note)
        used = max(0.0, after.get(pid, before[pid]) - before[pid])
        level.cpu_s[name] = level.cpu_s.get(name, 0.0) + used
    level.setup = label or target.name
    bad = [s for s in level.samples if not s.ok]
    print(
        f"  {level.setup:>4} x{concurrency:<3} {len(level.ok)}/{len(level.samples)} ok"
        f" in {level.wall_s:.1f} s, TTFB p50 {level.pct('ttfb_ms', 50):.2f} ms"
        + (f", errors: {sorted({s.error for s in bad})}" if bad else ""),
        flush=True,
    )
    return level


def report(levels: list[Level], hung: Level | None, ext_proc: dict[str, int]) -> str:
    out: list[str] = []
    by = {(lv.setup, lv.concurrency): lv for lv in levels}
    rows = []
    for lv in [*levels, *([hung] if hung else [])]:
        a = by.get(("a", lv.concurrency))
        b = by.get(("b", lv.concurrency))

        def ratio(base: Level | None, attr: str, q: float, lv: Level = lv) -> float:
            return lv.pct(attr, q) / base.pct(attr, q) if base and base.ok else float("nan")

        cpu = sum(lv.cpu_s.values())
        rows.append(
            [
                lv.concurrency,
                lv.setup,
                f"{len(lv.ok)}/{len(lv.samples)}",
                lv.pct("ttfb_ms", 50),
                lv.pct("ttfb_ms", 95),
                lv.pct("ttfb_ms", 99),
                lv.pct("total_ms", 50),
                lv.pct("total_ms", 95),
                lv.pct("total_ms", 99),
                ratio(a, "ttfb_ms", 50),
                ratio(b, "ttfb_ms", 50),
                ratio(a, "total_ms", 50),
                ratio(b, "total_ms", 50),
                cpu / lv.events * 1000 if lv.events else float("nan"),
            ]
        )
    out.append(
        table(
            [
                "conc",
                "setup",
                "ok",
                "TTFB p50",
                "p95",
                "p99",
                "total p50",
                "p95",
                "p99",
                "TTFB p50 /a",
                "/b",
                "total p50 /a",
                "/b",
                "proxy CPU s/1k ev",
            ],
            rows,
        )
    )
    out.append("")
    added = []
    for lv in [*levels, *([hung] if hung else [])]:
        if lv.setup not in ("c", "c-hung", "peer"):
            continue
        b = by.get(("b", lv.concurrency))
        if b is None or not b.ok:
            continue
        added.append(
            [
                lv.concurrency,
                lv.setup,
                lv.pct("ttfb_ms", 50) - b.pct("ttfb_ms", 50),
                lv.pct("ttfb_ms", 99) - b.pct("ttfb_ms", 99),
                lv.pct("total_ms", 50) - b.pct("total_ms", 50),
                lv.pct("total_ms", 99) - b.pct("total_ms", 99),
                lv.cpu_s.get("core", float("nan")),
                lv.cpu_s.get("core", 0.0) / lv.events * 1000 if lv.events else float("nan"),
            ]
        )
    if added:
        out.append(
            table(
                [
                    "conc",
                    "setup",
                    "TTFB p50 - b (ms)",
                    "TTFB p99 - b (ms)",
                    "total p50 - b (ms)",
                    "total p99 - b (ms)",
                    "core CPU s",
                    "core CPU s/1k ev",
                ],
                added,
            )
        )
    out.append("")
    out.append(by_body_size([*levels, *([hung] if hung else [])]))
    notes = [f"{lv.setup} x{lv.concurrency}: {lv.note}" for lv in levels if lv.note]
    if notes:
        out.append("")
        out.append("Notes: " + "; ".join(notes))
    if ext_proc:
        out.append("")
        out.append(
            "Envoy (c) ext_proc and flow-control counters after the (c) levels, and what the "
            "hung run added (hung:): " + json.dumps(ext_proc, sort_keys=True)
        )
    return "\n".join(out)


def renice(pid: int, value: int) -> None:
    """setpriority on a pid moves one thread only: move each of the process's threads."""
    tasks = list(Path(f"/proc/{pid}/task").iterdir())
    for task in tasks:
        os.setpriority(os.PRIO_PROCESS, int(task.name), value)
    print(f"core pid {pid}: {len(tasks)} threads at nice {value}")


def sched_idle(pid: int) -> None:
    """Run the core only when a CPU has nothing else to do (Linux SCHED_IDLE)."""
    tasks = list(Path(f"/proc/{pid}/task").iterdir())
    for task in tasks:
        os.sched_setscheduler(int(task.name), os.SCHED_IDLE, os.sched_param(0))
    print(f"core pid {pid}: {len(tasks)} threads SCHED_IDLE")


def pin(pid: int, cpu: int) -> None:
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), {cpu})
    print(f"pid {pid} pinned to CPU {cpu}")


def by_body_size(levels: list[Level]) -> str:
    """TTFB p50 per request body size: what the body costs each setup."""
    setups = list(dict.fromkeys(lv.setup for lv in levels))
    rows = []
    for conc in sorted({lv.concurrency for lv in levels}):
        sizes = sorted({s.body_bytes for lv in levels for s in lv.ok})
        for size in sizes:
            row: list[object] = [conc, f"{size / 1e6:.2f} MB"]
            for name in setups:
                found = [lv for lv in levels if lv.setup == name and lv.concurrency == conc]
                values = [s.ttfb_ms for lv in found for s in lv.ok if s.body_bytes == size]
                row.append(percentile(values, 50))
            rows.append(row)
    return table(["conc", "body", *(f"TTFB p50 {n}" for n in setups)], rows)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="CI-sized run (levels 1, 8; short mix)")
    p.add_argument("--levels", type=str, default=None, help="concurrencies, e.g. 1,8,32")
    p.add_argument("--requests", type=int, default=None, help="requests per level (all sessions)")
    p.add_argument(
        "--per-session", default=None, help="requests per session by level, e.g. 1:24,8:12,32:4"
    )
    p.add_argument("--event-delay", type=float, default=None, help="seconds between SSE events")
    p.add_argument("--setups", default="a,b,c,peer,hung", help="subset of a,b,c,peer,hung")
    p.add_argument("--litellm", default=LITELLM_DEFAULT, help="the LiteLLM proxy executable")
    p.add_argument("--hung-level", type=int, default=8, help="concurrency of the hung-core run")
    p.add_argument("--json", type=Path, default=None, help="write every sample here")
    p.add_argument(
        "--core-nice", type=int, default=0, help="experiment: renice the core's threads to N"
    )
    p.add_argument("--pin-core", type=int, default=None, help="experiment: core on this CPU")
    p.add_argument(
        "--core-sched-idle", action="store_true", help="experiment: core threads SCHED_IDLE"
    )
    p.add_argument("--pin-upstream", type=int, default=None, help="experiment: upstream CPU")
    args = p.parse_args(argv)

    levels = [int(x) for x in (args.levels or ("1,8" if args.quick else "1,8,32")).split(",")]
    # Requests per session at each concurrency: enough samples for p99 at 8 and 32, and
    # a bounded run time at 1 (where p99 is close to the maximum of the sample).
    per_session = {1: 12, 8: 4} if args.quick else {1: 36, 8: 12, 32: 4}
    if args.requests:
        per_session = {c: max(1, args.requests // c) for c in levels}
    if args.per_session:
        pairs = (item.split(":") for item in args.per_session.split(","))
        per_session = {int(c): int(n) for c, n in pairs}
    delay = args.event_delay if args.event_delay is not None else (0.002 if args.quick else 0.005)
    mix = QUICK_MIX if args.quick else FULL_MIX
    wanted = set(args.setups.split(","))
    if "peer" in wanted and not Path(args.litellm).is_file():
        print(f"peer skipped: no LiteLLM at {args.litellm} (see benchmarks/README.md)")
        wanted.discard("peer")

    print_header("benchmarks.latency", argv)
    print(
        f"levels {levels}, requests per session {per_session}, event delay {delay * 1000:g} ms, "
        f"mix (body bytes, events): {[(s.body_bytes, s.events) for s in mix]}"
    )
    with tempfile.TemporaryDirectory(prefix="clauditor-bench-") as tmp:
        stack = Stack(Path(tmp))
        try:
            stack.start_upstream()
            if "b" in wanted:
                stack.start_plain_envoy()
            if wanted & {"c", "hung"}:
                stack.start_clauditor()
                if args.core_nice:
                    renice(stack.core_pid, args.core_nice)
                if args.pin_core is not None:
                    pin(stack.core_pid, args.pin_core)
                if args.core_sched_idle:
                    sched_idle(stack.core_pid)
            if args.pin_upstream is not None:
                pin(stack.targets["a"].pids[0], args.pin_upstream)
            if "peer" in wanted:
                stack.start_litellm(args.litellm)
            levels_out, hung, ext = asyncio.run(
                _run(stack, wanted, levels, per_session, delay, mix, args.hung_level)
            )
        finally:
            stack.stop()
    text = report(levels_out, hung, ext)
    print()
    print(text)
    if args.json:
        samples = [asdict(s) for lv in [*levels_out, *([hung] if hung else [])] for s in lv.samples]
        args.json.write_text(json.dumps(samples))


async def _run(
    stack: Stack,
    wanted: set[str],
    levels: list[int],
    per_session: dict[int, int],
    delay: float,
    mix: Sequence[Shape],
    hung_level: int,
) -> tuple[list[Level], Level | None, dict[str, int]]:
    async with SyntheticSession(f"http://{HOST}:1") as builder:
        bodies = [build_body(builder, shape, delay) for shape in mix]
    nonces = itertools.count(1)
    order = [n for n in ("a", "b", "c", "peer") if n in wanted and n in stack.targets]
    print("warm-up", flush=True)
    for name in order:
        await run_level(stack.targets[name], bodies[:1], 1, 3, delay, nonces)
    out: list[Level] = []
    for conc in levels:
        count = per_session.get(conc, max(1, 96 // conc))
        print(f"concurrency {conc}: {count} requests per session", flush=True)
        for name in order:
            target = stack.targets[name]
            out.append(await measure(stack, target, bodies, conc, count, delay, nonces))
            await asyncio.sleep(1.0)
    hung: Level | None = None
    ext: dict[str, int] = {}
    if "c" in stack.targets:
        ext = stack.envoy_ext_proc_stats()
    if "hung" in wanted:
        count = per_session.get(hung_level, max(1, 96 // hung_level))
        print(f"hung core: SIGSTOP pid {stack.core_pid}", flush=True)
        os.kill(stack.core_pid, signal.SIGSTOP)
        try:
            target = stack.targets["c"]
            hung = await run_level(target, bodies, hung_level, count, delay, nonces)
            hung.setup = "c-hung"
            print(f"  c-hung x{hung_level}: {len(hung.ok)}/{len(hung.samples)} ok", flush=True)
        finally:
            os.kill(stack.core_pid, signal.SIGCONT)
        await asyncio.to_thread(stack.wait_core_idle, 60.0)
        after = stack.envoy_ext_proc_stats()
        ext |= {f"hung:{k}": v - ext.get(k, 0) for k, v in after.items() if v != ext.get(k, 0)}
    return out, hung, ext


if __name__ == "__main__":
    main()
