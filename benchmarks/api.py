"""What the JSON API costs to answer: `GET /api/sessions?limit=N` over N live sessions and
over N stored ones, one session's detail, the summary and the report; each answer built,
validated against its response model and written (api/schemas), in process through
`httpx.ASGITransport` (no socket: the numbers are the API's own).

    python -m benchmarks.api --quick   # CI-sized: 50 sessions, 3 rounds
    python -m benchmarks.api           # the run of docs/performance.md: 1,000 sessions

The sessions are a recorded Claude Code run (a Bash round trip, 2 requests, 1 tool call;
tests/fixtures/b_tool_bash.jsonl), replayed under N session ids through the real
interpreter, tracker and store by the tests' replayer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from benchmarks.workload import machine, percentile, table
from clauditor.api.app import create_app
from clauditor.clock import ManualClock
from clauditor.core import Core, CoreConfig
from tests.helpers import fixture_posts, headers_of
from tests.sessions.replay import Replayer

T0 = 1_796_000_000.0
TIMEOUT = 600.0  # the whole benchmark
RUN = "b_tool_bash"


def _populate(core: Core, clock: ManualClock, sessions: int) -> list[str]:
    """The recorded run, once per new session id, through the real interpreter (the
    tests' replayer: headers, body, the fake upstream's bytes for the response)."""
    posts = fixture_posts(RUN)
    old = headers_of(posts[0])["x-claude-code-session-id"]
    replay = Replayer(core.tracker, clock)
    ids = []
    for _ in range(sessions):
        sid = str(uuid.uuid4())
        for post in posts:
            replay.exchange(json.loads(json.dumps(post).replace(old, sid)))
        clock.advance(1.0)
        ids.append(sid)
    if not core.store.writer.flush(timeout=120.0):
        raise SystemExit("the store did not write the sessions within 120 s")
    return ids


async def _time(
    client: httpx.AsyncClient, path: str, rounds: int, check: Callable[[Any], bool]
) -> list[float]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        response = await client.get(path)
        times.append((time.perf_counter() - start) * 1000)
        if response.status_code != 200 or not check(response.json()):
            raise SystemExit(f"{path}: unexpected answer {response.status_code}")
    return times


async def _measure(
    core: Core, label: str, paths: list[tuple[str, Callable[[Any], bool]]], rounds: int
) -> list[list[object]]:
    transport = httpx.ASGITransport(app=create_app(core.api_deps()))
    rows: list[list[object]] = []
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        for path, check in paths:
            await _time(client, path, 1, check)  # warm: first query plans, imports
            times = await _time(client, path, rounds, check)
            route = path.split("?")[0].rsplit("/", 1)[0] + "/{id}" if "/sessions/" in path else path
            rows.append([label, route, percentile(times, 50), percentile(times, 95)])
    return rows


async def run(sessions: int, rounds: int) -> str:
    with tempfile.TemporaryDirectory(prefix="clauditor-bench-api-") as tmp:
        db = Path(tmp) / "api.db"
        clock = ManualClock(T0)
        live = Core(CoreConfig(db=db), clock=clock)
        live.store.start()
        ids = _populate(live, clock, sessions)

        def listed(body: Any) -> bool:
            return len(body["sessions"]) == sessions

        def detail(body: Any) -> bool:
            return len(body["requests"]) == 2 and len(body["tool_calls"]) == 1

        paths: list[tuple[str, Callable[[Any], bool]]] = [
            (f"/api/sessions?limit={sessions}", listed),
            (f"/api/sessions/{ids[-1]}", detail),
            ("/api/summary", lambda b: b["today"]["sessions"] == sessions),
            ("/api/report", lambda b: b["sessions"] == sessions),
        ]
        rows = await _measure(live, f"{sessions} live", paths, rounds)
        live.store.stop()
        live.telemetry.shutdown()
        # A core that has not started: the same sessions, all from the file.
        stored = Core(CoreConfig(db=db), clock=clock)
        stored.store.start()
        rows += await _measure(stored, f"{sessions} stored", paths[:2], rounds)
        stored.store.stop()
        stored.telemetry.shutdown()
    head = f"API answers, {rounds} rounds each, in process ({machine()})\n\n"
    return head + table(["sessions", "route", "p50 ms", "p95 ms"], rows)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sessions", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--quick", action="store_true", help="50 sessions, 3 rounds")
    args = p.parse_args(argv)
    sessions, rounds = (50, 3) if args.quick else (args.sessions, args.rounds)
    sessions = max(1, min(sessions, 1000))  # /api/sessions lists at most 1,000
    print(asyncio.run(asyncio.wait_for(run(sessions, max(1, min(rounds, 100))), TIMEOUT)))


if __name__ == "__main__":
    main()
