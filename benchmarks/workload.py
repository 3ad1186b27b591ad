"""Shared pieces of the benchmarks: Claude-Code-shaped bodies, processes, percentiles, tables."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from clauditor.sim.claude import SyntheticSession

NONCE = b"NONCE-000000000000"  # replaced per request, so no two requests are byte-identical
_CODE = (
    'def handler_{i}(request):\n    """Return the value for {i}."""\n'
    '    return {{"id": {i}, "name": "item-{i}", "ok": True}}\n\n'
)


@dataclass(frozen=True)
class Shape:
    """One request of the mix: body size in bytes and SSE events in the response."""

    body_bytes: int
    events: int


@dataclass(frozen=True)
class Body:
    """An encoded request body split around its nonce, so requests can differ for free."""

    prefix: bytes
    suffix: bytes
    shape: Shape

    @property
    def size(self) -> int:
        return len(self.prefix) + len(NONCE) + len(self.suffix)

    def parts(self, nonce: int) -> tuple[bytes, bytes, bytes]:
        return self.prefix, b"NONCE-%012d" % (nonce % 10**12), self.suffix


def _file_text(n: int, start: int) -> str:
    out: list[str] = []
    size = 0
    i = start
    while size < n:
        piece = _CODE.format(i=i)
        out.append(piece)
        size += len(piece)
        i += 1
    return "".join(out)[:n]


def build_body(session: SyntheticSession, shape: Shape, delay: float) -> Body:
    """A main-thread body of about shape.body_bytes: a history of Read tool rounds (file
    text in tool_result blocks, as real multi-MB Claude Code bodies are), then a prompt."""
    prompt = (
        f"Benchmark request {NONCE.decode()}: summarise the files above. "
        f"[[fake:events {shape.events}]] [[fake:delay {delay}]]"
    )
    first = {
        "role": "user",
        "content": [{"type": "text", "text": "Look at the handlers in src/ and explain them."}],
    }
    closing = [
        {"role": "assistant", "content": [{"type": "text", "text": "I read the files."}]},
        {
            "role": "user",
            "content": [{"type": "text", "text": prompt, "cache_control": {"type": "ephemeral"}}],
        },
    ]

    def encode(history: list[dict[str, Any]]) -> bytes:
        body = session.main_body([first, *history, *closing])
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()

    def tool_round(k: int, file_chars: int) -> list[dict[str, Any]]:
        tool_id = f"toolu_01bench{k:016d}"
        return [
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": f"Reading file {k}."},
                    {
                        "type": "tool_use",
                        "id": tool_id,
                        "name": "Read",
                        "input": {"file_path": f"/home/dev/project/src/handlers_{k}.py"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": tool_id,
                        "content": _file_text(file_chars, k * 100),
                    }
                ],
            },
        ]

    per_round = 8 * 1024
    round_bytes = len(json.dumps(tool_round(0, per_round), ensure_ascii=False))
    rounds = max(0, (shape.body_bytes - len(encode([]))) // round_bytes)
    history = [m for k in range(rounds) for m in tool_round(k, per_round)]
    history += tool_round(rounds, 0)
    # Top the last tool_result up to the target size.
    missing = shape.body_bytes - len(encode(history))
    if missing > 0:
        last = history[-1]["content"][0]
        last["content"] += _file_text(missing, 0)
        overshoot = len(encode(history)) - shape.body_bytes
        if overshoot > 0:
            last["content"] = last["content"][: max(0, len(last["content"]) - overshoot)]
    data = encode(history)
    prefix, _, suffix = data.partition(NONCE)
    return Body(prefix, suffix, shape)


# -- processes ------------------------------------------------------------------------


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def stop_process(proc: subprocess.Popen[Any] | None, timeout: float = 10.0) -> None:
    """SIGCONT (in case we stopped it), SIGTERM, then SIGKILL; only this process."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)
    except ProcessLookupError:
        pass


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll check() until True, bounded in time."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready within {timeout} s")
        time.sleep(0.1)


def wait_http(url: str, timeout: float = 30.0, ok: Sequence[int] = (200,)) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    with httpx.Client(timeout=1.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            try:
                if client.get(url).status_code in ok:
                    return
            except httpx.HTTPError as exc:
                last = str(exc)
            time.sleep(0.1)
    raise RuntimeError(f"{url} not ready within {timeout} s ({last})")


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def rss_mb(pid: int | str = "self") -> float:
    """VmRSS of a process in MiB, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out += [int(x) for x in text]
    return out


# -- statistics and tables -------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank-interpolated percentile (q in 0..100); nan for no values."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table (readable in a terminal too)."""

    def cell(v: object) -> str:
        if isinstance(v, float):
            if v != v:  # nan
                return "-"
            if v != 0 and abs(v) < 0.1:
                return f"{v:.4f}"
            return f"{v:.2f}" if abs(v) < 100 else f"{v:.0f}"
        return str(v)

    text = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text)) for i, h in enumerate(headers)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    for r in text:
        lines.append("| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |")
    return "\n".join(lines)


def machine() -> str:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem = int(line.split()[1]) // (1024 * 1024)
    return f"{model}, {os.cpu_count()} cores, {mem} GiB RAM, Python {sys.version.split()[0]}"


def print_header(module: str, argv: list[str] | None) -> None:
    """What every benchmark prints first: the machine, the date and its own command line."""
    given = argv if argv is not None else sys.argv[1:]
    print(f"machine: {machine()}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}")
    print(f"command: python -m {module} {' '.join(given)}".rstrip())


def until_core_idle(stats: Callable[[], dict[str, Any]], timeout: float, interval: float) -> None:
    """Until the core has no open side stream and its consumers have caught up: the bus
    does not export its backlog, so idle is no stream and nothing delivered or written
    between two polls `interval` apart (gives up quietly after `timeout`)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        s = stats()
        now = (s["wire"]["active"], [b["delivered"] for b in s["bus"]], s["store"])
        if s["wire"]["active"] == 0 and now == last:
            return
        last = now
        time.sleep(interval)


HEAD_LINES_READ = 200  # a response head's lines, at most


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    """An HTTP/1.1 response head off a raw connection: its status and headers."""
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:HEAD_LINES_READ]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    return status, headers
