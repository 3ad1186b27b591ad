"""Helpers for the reliability and security tests (test_load, test_faults, test_security):
OTLP settings for a test stack, a paced synthetic client, per-process memory and listening
sockets read from /proc, a raw /watch recorder and a black-holed TCP endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from clauditor.sim.claude import SyntheticSession, TurnResult
from clauditor.watch.client import parse_sse
from tests.helpers import wait_until
from tests.integration.stack import Stack

TOOL_SECONDS = 0.05  # a tool takes a moment, like a real one (see test_telemetry_otlp)


def otlp_env(monkeypatch: pytest.MonkeyPatch, **extra: str) -> None:
    """The stack's telemetry knobs: quick batches, no stray endpoint from the environment."""
    for var in (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "OTEL_SDK_DISABLED",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    for key, value in extra.items():
        monkeypatch.setenv(key, value)


class PacedSession(SyntheticSession):
    """A synthetic Claude Code whose tools take TOOL_SECONDS; `tool_output` (if set) is
    what every tool returns, e.g. a file's contents that must never leak into views."""

    tool_output: str | None = None

    async def _tool_result(self, call: dict[str, Any], out: TurnResult) -> dict[str, Any]:
        await asyncio.sleep(TOOL_SECONDS)
        result = await super()._tool_result(call, out)
        if self.tool_output is not None:
            result["content"] = [{"type": "text", "text": self.tool_output}]
        return result


# -- /proc ----------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    """Resident set size of a process, KiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def is_dead(pid: int) -> bool:
    """The process has exited: gone from /proc, or a zombie its parent has not reaped."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    state = next((line.split()[1] for line in status.splitlines() if line.startswith("State:")), "")
    return state in ("Z", "X")


def children(pid: int) -> list[int]:
    """Direct children of pid (every thread's children file)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(x) for x in (task / "children").read_text().split()]
    return found


def _socket_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    return inodes


def _decode_addr(hex_addr: str, v6: bool) -> tuple[str, int]:
    host_hex, port_hex = hex_addr.split(":")
    raw = bytes.fromhex(host_hex)
    if v6:  # four little-endian 32-bit words
        raw = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
        mapped = ipaddress.IPv6Address(raw).ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
        host = str(mapped) if mapped else socket.inet_ntop(socket.AF_INET6, raw)
    else:
        host = socket.inet_ntop(socket.AF_INET, raw[::-1])
    return host, int(port_hex, 16)


@dataclass(frozen=True)
class Bound:
    pid: int
    proto: str  # tcp, tcp6, udp, udp6
    host: str
    port: int


def bound_sockets(pids: list[int]) -> list[Bound]:
    """Every listening TCP socket and every bound UDP socket these processes hold."""
    owner = {inode: pid for pid in pids for inode in _socket_inodes(pid)}
    out: list[Bound] = []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        path = Path(f"/proc/net/{proto}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            cols = line.split()
            local, remote, state, inode = cols[1], cols[2], cols[3], cols[9]
            if inode not in owner:
                continue
            if proto.startswith("tcp") and state != "0A":  # 0A: LISTEN
                continue
            host, port = _decode_addr(local, proto.endswith("6"))
            # UDP: only unconnected sockets receive from anyone (a resolver's are connected).
            if proto.startswith("udp") and (port == 0 or int(remote.split(":")[1], 16) != 0):
                continue
            out.append(Bound(owner[inode], proto, host, port))
    return out


def stored_counts(db: Path) -> dict[str, tuple[int, int, int]]:
    """Session id -> (turns, requests, tool_calls) as stored, read-only (the core writes)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        q = "select session_id, turns, requests, tool_calls from sessions"
        return {r[0]: tuple(r[1:]) for r in conn.execute(q)}
    finally:
        conn.close()


def integrity(db: Path) -> str:
    """SQLite's own check of the whole file ("ok" when sound); the connection is closed."""
    conn = sqlite3.connect(db, timeout=10)
    try:
        return str(conn.execute("pragma integrity_check").fetchone()[0])
    finally:
        conn.close()


# -- network fixtures -----------------------------------------------------------------


@contextlib.contextmanager
def black_hole() -> Iterator[str]:
    """A loopback TCP endpoint that accepts connections and never answers a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set() and len(held) < 1000:  # bounded: a few per export attempt
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            held.append(conn)  # kept open, never read, never written

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()


@dataclass
class WatchRecorder:
    """GET /watch on a thread; keeps the raw bytes (for secret scans) until closed."""

    url: str
    raw: bytearray = field(default_factory=bytearray)
    _stop: threading.Event = field(default_factory=threading.Event)
    _started: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> WatchRecorder:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise TimeoutError("no /watch response within 10 s")
        return self

    def _run(self) -> None:
        # A short heartbeat keeps bytes coming, so the loop sees the stop flag promptly.
        with httpx.stream(
            "GET", self.url + "/watch?heartbeat=0.2", timeout=10, trust_env=False
        ) as resp:
            self._started.set()
            for chunk in resp.iter_raw():
                self.raw += chunk
                if self._stop.is_set():
                    return

    def events(self) -> list[dict[str, Any]]:
        """The events received so far, read by the watch client's own SSE reader."""
        text = bytes(self.raw).decode("utf-8", "replace")
        return list(parse_sse(text.splitlines()))

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


def wait_stored(stack: Stack, timeout: float = 10.0) -> None:
    """Until the core's writer has committed every row it was given (its pending count,
    /api/stats → store.rows_pending, back at 0): instead of sleeping past its interval."""

    def committed() -> bool:
        return bool(stack.get("/api/stats").json()["store"]["rows_pending"] == 0)

    wait_until(committed, timeout=timeout, interval=0.05)


def wait_settled(stack: Stack, timeout: float = 15.0, spans: bool = True) -> dict[str, Any]:
    """Core stats once no session has a request in flight and (with `spans`) no span is
    open. (Not wire.active: Envoy holds a finished exchange's side stream open for 5 s.)"""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    for _ in range(int(timeout / 0.1) + 1):
        listed = stack.get("/api/sessions?limit=1000").json()["sessions"]
        busy = [s for s in listed if s["in_flight"]]
        last = stack.get("/api/stats").json()
        if not busy and (last["telemetry"]["open"] == 0 or not spans):
            return last
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    stuck = []
    for session in listed:
        detail = stack.get(f"/api/sessions/{session['session_id']}").json()
        pending = detail.get("tool_calls") or []
        open_turns = [t for t in detail.get("turns", []) if t.get("outcome") == "in_progress"]
        if session["in_flight"] or pending or open_turns:
            stuck.append({"session": session["session_id"], "in_flight": session["in_flight"],
                          "pending_tools": pending, "open_turns": open_turns,
                          "requests": detail.get("requests", [])[-3:]})  # fmt: skip
    raise TimeoutError(f"core not settled within {timeout} s: {last}; stuck: {stuck[:3]}")
