"""`clauditor demo`: the whole embedded stack against a fake Anthropic, with scripted sessions.

A newcomer sees sessions, turns and tool calls without an Anthropic key. First a few
scripted sessions run and are summed up; then (unless `--once`) a handful of sessions
keep working until Ctrl-C, so there is something live to watch (`clauditor watch` in
another terminal): tool turns, a subagent, a model fallback, a session that waits on a
permission prompt (through a demo session registry, as Claude Code 2.1.332 keeps one),
pauses long enough to see "your turn" and the prompt-cache countdown.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import httpx

from clauditor.envoy.config import Upstream
from clauditor.sim.claude import SyntheticSession, run_demo_sessions
from clauditor.sim.server import FakeUpstream
from clauditor.supervisor import Supervisor, UpConfig

# The live sessions: (project directory, first prompt).
LIVE = (
    ("/home/dev/shop-api", "add rate limiting to the checkout endpoint"),
    ("/home/dev/docs-site", "fix the broken links in the install guide"),
    ("/home/dev/infra", "why is the nightly backup job slow?"),
)
TOOLS = (
    '[[fake:tool Bash {"command": "pytest -q tests/"}]]',
    '[[fake:tool Read {"file_path": "src/app/main.py"}]]',
    '[[fake:tool Grep {"pattern": "TODO", "path": "src"}]]',
)
SUBAGENT = '[[fake:tool Agent {"description": "survey the code", "prompt": "list the modules"}]]'
FALLBACK = "[[fake:model claude-sonnet-4-5]]"
PAUSE = 4.0  # seconds between two turns of a live session: "your turn" shows


class DemoRegistry:
    """A stand-in for Claude Code's session registry (`<dir>/sessions/<pid>.json`), so the
    demo can show a session blocked on a permission prompt: entries carry this process's
    pid (and start), which the core checks is alive."""

    def __init__(self, claude_dir: Path) -> None:
        self.dir = claude_dir / "sessions"
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            stat = Path("/proc/self/stat").read_text()
            self.proc_start: str | None = stat.rsplit(")", 1)[-1].split()[19]
        except (OSError, IndexError):
            self.proc_start = None

    def write(self, n: int, session_id: str, cwd: str, status: str, waiting: str | None) -> None:
        entry = {
            "pid": os.getpid(),
            "sessionId": session_id,
            "cwd": cwd,
            "startedAt": int(time.time() * 1000),
            "procStart": self.proc_start,
            "version": "2.1.332",
            "kind": "interactive",
            "entrypoint": "cli",
            "name": Path(cwd).name,
            "status": status,
            "statusUpdatedAt": int(time.time() * 1000),
        }
        if waiting:
            entry["waitingFor"] = waiting
        path = self.dir / f"demo-{n}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entry))
        tmp.replace(path)  # never a half-written file for the core to read


async def live_sessions(proxy: str, registry: DemoRegistry, stop: threading.Event) -> None:
    """A few sessions that keep working until `stop`: each turn a tool, now and then a
    subagent, a fallback, or a permission prompt that takes a while to be answered."""

    async def one(n: int, cwd: str, first: str) -> None:
        async with SyntheticSession(proxy) as s:
            registry.write(n, s.session_id, cwd, "idle", None)
            for k in range(10_000):  # bounded: about a day of demo at a turn every few s
                if stop.is_set():
                    return
                prompt = first if k == 0 else f"next step {k}"
                extra = TOOLS[(n + k) % len(TOOLS)]
                if k % 7 == 3:
                    extra = SUBAGENT
                elif k % 11 == 5:
                    extra += f" {FALLBACK}"
                if (n + k) % 5 == 4:
                    # Claude Code asks before running the tool; the user takes a while.
                    registry.write(n, s.session_id, cwd, "waiting", "permission prompt")
                    await asyncio.sleep(3 * PAUSE)
                registry.write(n, s.session_id, cwd, "busy", None)
                # The fake's directives ride in a reminder: no prompt view shows them.
                hidden = f"<system-reminder>{extra} [[fake:delay 0.05]]</system-reminder>"
                await s.turn(f"{prompt}\n{hidden}")
                registry.write(n, s.session_id, cwd, "idle", None)
                await asyncio.sleep(PAUSE + n)

    await asyncio.gather(*(one(n, cwd, first) for n, (cwd, first) in enumerate(LIVE)))


def _summary(api_url: str, session_ids: list[str]) -> str:
    rows = httpx.get(f"{api_url}/api/sessions", timeout=5, trust_env=False).json()["sessions"]
    lines = [f"{'session':38} {'turns':>5} {'reqs':>4} {'tools':>5} {'out tok':>7}  first prompt"]
    for s in rows:
        if s["session_id"] in session_ids:
            lines.append(
                f"{s['session_id']:38} {s['turns']:>5} {s['requests']:>4} {s['tool_calls']:>5} "
                f"{s['output_tokens']:>7}  {(s['first_prompt'] or '')[:40]}"
            )
    return "\n".join(lines)


def run_demo(
    config: UpConfig,
    *,
    sessions: int = 3,
    turns: int = 3,
    once: bool = False,
    claude_dir: Path | None = None,
    out: Callable[[str], None] = print,
) -> int:
    stop = threading.Event()
    with FakeUpstream().running_in_thread() as fake:
        supervisor = Supervisor(replace(config, upstream=Upstream.parse(fake.url)), out=out)

        def drive() -> None:
            proxy = f"http://{config.listen}"
            try:
                ids = asyncio.run(run_demo_sessions(proxy, sessions=sessions, turns=turns))
                # Let the core's writer catch up before reading the API back.
                ids_done = set(ids)
                for _ in range(50):
                    rows = httpx.get(
                        f"{config.api.url}/api/sessions", timeout=5, trust_env=False
                    ).json()["sessions"]
                    if ids_done <= {r["session_id"] for r in rows if not r["in_flight"]}:
                        break
                    threading.Event().wait(0.1)
                out(f"\ndemo: drove {len(ids)} sessions through Envoy\n")
                out(_summary(config.api.url, ids))
                out(f"\nexplore: curl -s {config.api.url}/api/sessions")
                if not once and claude_dir is not None:
                    out(
                        f"\nlive: {len(LIVE)} sessions keep working until Ctrl-C; in another"
                        f" terminal: clauditor watch --url {config.api.url}"
                    )
                    asyncio.run(live_sessions(proxy, DemoRegistry(claude_dir), stop))
            except Exception as exc:  # the demo driver must not leave the stack running
                out(f"demo failed: {exc}")
            finally:
                if once:
                    supervisor.request_stop()

        try:
            return supervisor.run(ready=lambda: threading.Thread(target=drive, daemon=True).start())
        finally:
            stop.set()
