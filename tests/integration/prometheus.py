"""A real Prometheus on loopback scraping a running core, and a scripted demo run that makes
every clauditor metric move: shared by the /metrics test and the dashboard test."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from clauditor.netaddr import free_port
from clauditor.sim.claude import SyntheticSession, TurnResult
from clauditor.sim.replies import Reply
from clauditor.sim.server import FakeUpstream
from tests.helpers import wait_until
from tests.integration.stack import Stack

QUOTA_HEADERS = {
    "anthropic-ratelimit-unified-status": "allowed",
    "anthropic-ratelimit-unified-5h-utilization": "0.25",
    "anthropic-ratelimit-unified-7d-utilization": "0.4",
}
BASH = '[[fake:tool Bash {"command": "ls"}]]'
AGENT = '[[fake:tool Agent {"description": "look", "prompt": "list the repo files"}]]'
SCRAPE_SECONDS = 1


def prometheus_binary() -> str:
    """The `prometheus` on PATH; skips without one, unless CLAUDITOR_REQUIRE_PROMETHEUS."""
    found = shutil.which("prometheus")
    if found is None:
        if os.environ.get("CLAUDITOR_REQUIRE_PROMETHEUS"):
            pytest.fail("prometheus is not installed (apt-get install -y prometheus)")
        pytest.skip("prometheus is not installed (apt-get install -y prometheus)")
    return found


def budget_supported() -> bool:
    """The weekly budget (and so its exhaustion) exists once `serve` takes one."""
    out = subprocess.run(
        [sys.executable, "-m", "clauditor", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stdout
    return "--weekly-token-budget" in out


@contextlib.contextmanager
def running_prometheus(binary: str, api_port: int, tmp: Path) -> Iterator[str]:
    """Prometheus on a free loopback port scraping 127.0.0.1:api_port every second; yields
    its base URL and stops it (bounded) afterwards."""
    port = free_port()
    config = tmp / "prometheus.yml"
    config.write_text(
        "global:\n"
        f"  scrape_interval: {SCRAPE_SECONDS}s\n"
        "scrape_configs:\n"
        "  - job_name: clauditor\n"
        f"    scrape_interval: {SCRAPE_SECONDS}s\n"
        f"    scrape_timeout: {SCRAPE_SECONDS}s\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{api_port}']\n"
    )
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            return httpx.get(f"{url}/-/ready", timeout=1, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(ready, timeout=30, interval=0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=10)  # and its stderr pipe closed
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate(timeout=5)


def query(prom: str, expr: str) -> list[dict[str, Any]]:
    """An instant query; the result vector (raises on a PromQL error, with its message)."""
    r = httpx.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=5, trust_env=False)
    body = r.json()
    if r.status_code != 200 or body.get("status") != "success":
        raise ValueError(f"{expr}: {body.get('errorType')}: {body.get('error')}")
    return body["data"]["result"]


class ToolTakesTime(SyntheticSession):
    async def _tool_result(self, call: dict[str, Any], out: TurnResult) -> dict[str, Any]:
        await asyncio.sleep(0.03)  # like a real tool; see test_telemetry_otlp
        return await super()._tool_result(call, out)


def drive_demo(stack: Stack, fake: FakeUpstream) -> None:
    """Three concurrent sessions: quota headers, tools (one failing), a subagent, a
    compaction, a model switch (cache miss), a 529 then its retry, a fallback, and a
    model the catalog does not know (unpriced, drift)."""

    async def main_session() -> None:
        async with ToolTakesTime(stack.proxy_url) as a:
            fake.script(a.session_id, [Reply(text="hello", headers=QUOTA_HEADERS)])
            await a.turn("first turn, quota headers come back")
            for prompt in (f"use a tool {BASH}", f"ask a subagent {AGENT}", "a plain turn"):
                await asyncio.sleep(0.2)  # a person reads before typing the next prompt
                await a.turn(prompt)
            await a.compact()
            await asyncio.sleep(0.2)
            await a.turn("after the compaction")
            # Same session on another model while the first cache is warm: a cache miss.
            async with SyntheticSession(
                stack.proxy_url, session_id=a.session_id, model="claude-sonnet-4-6"
            ) as other:
                await other.turn("switch model mid-session")

    async def troubled_session() -> None:
        async with ToolTakesTime(stack.proxy_url, failing_tools=["Bash"]) as b:
            await b.turn(f"a failing tool {BASH}")
            await asyncio.sleep(0.2)
            await b.turn("overloaded first [[fake:status 529 1]]")
            await asyncio.sleep(0.2)
            await b.turn("answered by another model [[fake:model claude-sonnet-4-6]]")

    async def drifted_session() -> None:
        # A model the catalog does not know: unpriced, and drift from what was verified.
        async with SyntheticSession(stack.proxy_url, model="claude-opus-6") as c:
            await c.turn("a model clauditor has never seen")

    async def both() -> None:
        await asyncio.gather(main_session(), troubled_session(), drifted_session())

    asyncio.run(both())
