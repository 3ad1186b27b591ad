"""`clauditor demo`: the whole embedded stack against a fake Anthropic, with scripted sessions.

A newcomer sees sessions, turns and tool calls in the API without an Anthropic key.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import replace

import httpx

from clauditor.envoy.config import Upstream
from clauditor.supervisor import Supervisor, UpConfig
from clauditor.testing.client import run_demo_sessions
from clauditor.testing.fake_upstream import FakeUpstream


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
    out: Callable[[str], None] = print,
) -> int:
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
            except Exception as exc:  # the demo driver must not leave the stack running
                out(f"demo failed: {exc}")
            finally:
                if once:
                    supervisor.request_stop()

        return supervisor.run(ready=lambda: threading.Thread(target=drive, daemon=True).start())
