"""How long `clauditor statusline` takes, as Claude Code runs it: a new process per call,
the captured payload on stdin, one line on stdout. Prints median / p95 / max in ms.

    python benchmarks/statusline.py [--runs 50] [--sessions 8]

It starts the real stack (`clauditor up`: Envoy + the core) against the fake upstream,
replays the captured Claude Code 2.1.332 session through Envoy
(tests/fixtures/claude-code-2.1.332/statusline) beside `--sessions` other live ones, then
times, one call after another:
- `python -c pass`: the interpreter's own start, the floor;
- `clauditor statusline` (the installed script) with the core up: the line and the POST
  of Claude Code's numbers;
- the same with the core stopped (SIGSTOP: it accepts, never answers) and with nothing
  listening: the fallback lines;
- `clauditor --version`: what the full click CLI costs to start, for comparison;
- in this process, the POST round trip alone (`line_for`), without a process start.
Everything runs on loopback; every loop is bounded by --runs (at most 1000).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clauditor.netaddr import free_port  # noqa: E402
from clauditor.sim.replies import Reply  # noqa: E402
from clauditor.sim.server import FakeUpstream  # noqa: E402
from clauditor.statusline import line_for  # noqa: E402
from tests.integration.stack import Stack, settled_detail, start_stack  # noqa: E402

CAPTURE = ROOT / "tests" / "fixtures" / "claude-code-2.1.332" / "statusline"
SID = "56fb9a3f-2a6c-4192-84ec-7b4d8b9fe343"


def clauditor_script() -> list[str]:
    script = Path(sys.executable).with_name("clauditor")
    return [str(script)] if script.exists() else [sys.executable, "-m", "clauditor"]


def timed(run: Callable[[], object], runs: int) -> list[float]:
    run()  # warm-up: page cache, .pyc files
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        out.append((time.perf_counter() - start) * 1000.0)
    return out


def row(name: str, ms: list[float]) -> str:
    ordered = sorted(ms)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"| {name} | {len(ms)} | {statistics.median(ms):.1f} | {p95:.1f} | {ordered[-1]:.1f} |"


def process(argv: list[str], payload: bytes, want: bytes | None = None) -> Callable[[], None]:
    def run() -> None:
        done = subprocess.run(argv, input=payload, capture_output=True, timeout=10, check=False)
        if want is not None and not done.stdout.startswith(want):
            raise RuntimeError(f"{argv}: {done.stdout!r} {done.stderr!r}")

    return run


def populate(stack: Stack, fake: FakeUpstream, sessions: int) -> None:
    """The captured session, and `sessions` others with one request each."""
    records = [json.loads(x) for x in (CAPTURE / "requests.jsonl").read_text().splitlines()]
    for record in records:
        fake.script(SID, [Reply.from_record(record["response"])])
        stack.post_record(record)
    for k in range(sessions):
        other = f"bench-{k:04d}-0000-4000-8000-000000000000"
        fake.script(other, [Reply.from_record(records[0]["response"])])
        stack.post_record(records[0], session_id=other)
    settled_detail(stack, SID, len(records))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50, help="timed calls per row (1-1000)")
    parser.add_argument("--sessions", type=int, default=8, help="other live sessions (0-256)")
    parser.add_argument(
        "--clauditor",
        default=None,
        help="the clauditor executable to time (default: the one beside this Python; an "
        "editable install pays ~10 ms more at start for its import hook)",
    )
    args = parser.parse_args()
    runs = max(1, min(args.runs, 1000))
    payload = (CAPTURE / "payloads.jsonl").read_text().splitlines()[-1].encode()
    command = [args.clauditor] if args.clauditor else clauditor_script()
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-statusline-") as tmp, FakeUpstream(
    ).running_in_thread() as fake:  # fmt: skip
        stack = start_stack(fake.url, Path(tmp))
        try:
            populate(stack, fake, max(0, min(args.sessions, 256)))
            line = line_for(payload, stack.api_url)
            floor = process([sys.executable, "-c", "pass"], b"")
            rows.append(row("python -c pass (interpreter start)", timed(floor, runs)))
            up = [*command, "statusline", "--url", stack.api_url]
            served = process(up, payload, "clauditor ·".encode())
            rows.append(row("clauditor statusline, core up", timed(served, runs)))
            alone = timed(lambda: line_for(payload, stack.api_url), runs)
            rows.append(row("POST + line in-process (no process start)", alone))
            pid = stack.core_pid()
            os.kill(pid, signal.SIGSTOP)
            try:
                slow = process(up, payload, b"clauditor: core not answering")
                # Few: the supervisor replaces a core that misses /health for 15 s.
                rows.append(row("clauditor statusline, core stopped", timed(slow, min(runs, 10))))
            finally:
                os.kill(pid, signal.SIGCONT)
        finally:
            stack.stop()
    down = [*command, "statusline", "--url", f"http://127.0.0.1:{free_port()}"]
    refused = process(down, payload, b"clauditor: core not running")
    rows.append(row("clauditor statusline, nothing listening", timed(refused, runs)))
    full = process([*command, "--version"], b"")
    rows.append(row("clauditor --version (the click CLI's start)", timed(full, runs)))
    print(f"line: {line}")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, command: {' '.join(command)}")
    print()
    print("| call | n | median ms | p95 ms | max ms |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
