"""A real Prometheus scrapes the core's /metrics while traffic flows through real Envoy;
its HTTP API must then have data for every metric clauditor declares."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from clauditor.netaddr import free_port
from clauditor.telemetry import names as n
from clauditor.testing.client import SyntheticSession, TurnResult
from clauditor.testing.fake_upstream import FakeUpstream, Reply
from tests.helpers import wait_until
from tests.integration.stack import Stack, start_stack

pytestmark = pytest.mark.integration

PROMETHEUS = shutil.which("prometheus")
QUOTA_HEADERS = {
    "anthropic-ratelimit-unified-status": "allowed",
    "anthropic-ratelimit-unified-5h-utilization": "0.25",
    "anthropic-ratelimit-unified-7d-utilization": "0.4",
}
BASH = '[[fake:tool Bash {"command": "ls"}]]'
AGENT = '[[fake:tool Agent {"description": "look", "prompt": "list the repo files"}]]'


class ToolTakesTime(SyntheticSession):
    async def _tool_result(self, call: dict[str, Any], out: TurnResult) -> dict[str, Any]:
        await asyncio.sleep(0.03)  # like a real tool; see test_telemetry_otlp
        return await super()._tool_result(call, out)


def _budget_supported() -> bool:
    """The weekly budget (and so its exhaustion) exists once `serve` takes one."""
    out = subprocess.run(
        [sys.executable, "-m", "clauditor", "serve", "--help"], capture_output=True, text=True
    ).stdout
    return "--weekly-token-budget" in out


@pytest.fixture
def prometheus_bin() -> str:
    if PROMETHEUS is None:
        if os.environ.get("CLAUDITOR_REQUIRE_PROMETHEUS"):
            pytest.fail("prometheus is not installed (apt-get install -y prometheus)")
        pytest.skip("prometheus is not installed (apt-get install -y prometheus)")
    return PROMETHEUS


@pytest.fixture
def metrics_stack(
    fake: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Stack]:
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CLAUDITOR_END_TIMEOUT", "2")  # sessions end (and report their cost)
    if _budget_supported():
        monkeypatch.setenv("CLAUDITOR_WEEKLY_TOKEN_BUDGET", "1000")
    stack = start_stack(fake.url, tmp_path, idle_timeout=1.0)
    try:
        yield stack
    finally:
        assert stack.stop() == 0, "\n".join(stack.log[-30:])


@pytest.fixture
def prometheus(prometheus_bin: str, metrics_stack: Stack, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: clauditor\n"
        "    scrape_interval: 1s\n"
        "    scrape_timeout: 1s\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{metrics_stack.api}']\n"
    )
    proc = subprocess.Popen(
        [
            prometheus_bin,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
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
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _drive(stack: Stack, fake: FakeUpstream) -> None:
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

    async def both() -> None:
        await asyncio.gather(main_session(), troubled_session())

    asyncio.run(both())


def _has_data(prom: str, name: str) -> bool:
    query = f'{{__name__=~"{name}|{name}_count"}}'
    r = httpx.get(f"{prom}/api/v1/query", params={"query": query}, timeout=5, trust_env=False)
    r.raise_for_status()
    return bool(r.json()["data"]["result"])


def test_every_metric_reaches_a_real_prometheus(
    prometheus: str, metrics_stack: Stack, fake: FakeUpstream
) -> None:
    _drive(metrics_stack, fake)
    # Idle after 1 s, ended after 2 more: the sessions report their cost.
    wait_until(lambda: all(s["status"] == "ended" for s in metrics_stack.sessions()), timeout=15)

    expected = [m.prometheus for m in n.METRICS]
    if not _budget_supported():
        # Without a --weekly-token-budget option there is no budget to report.
        expected.remove(n.WEEKLY_TOKENS_BUDGET.prometheus)
        expected.remove(n.WEEKLY_EXHAUSTION.prometheus)
    missing = expected
    deadline = time.monotonic() + 20
    while missing and time.monotonic() < deadline:
        missing = [name for name in missing if not _has_data(prometheus, name)]
        if missing:
            time.sleep(0.5)
    assert missing == [], f"no data in Prometheus for {missing}"

    # Prometheus names start with clauditor_ or gen_ai_; labels never carry a session id.
    r = httpx.get(f"{prometheus}/api/v1/label/__name__/values", timeout=5, trust_env=False)
    ours = [x for x in r.json()["data"] if not x.startswith(("scrape_", "up"))]
    assert ours and all(x.startswith(("clauditor_", "gen_ai_")) for x in ours), ours
    labels = httpx.get(f"{prometheus}/api/v1/labels", timeout=5, trust_env=False).json()["data"]
    assert not {"session_id", "session_id_", "gen_ai_conversation_id"} & set(labels)
    sessions = [s["session_id"] for s in metrics_stack.sessions()]
    body = metrics_stack.get("/metrics").text
    assert not any(sid in body for sid in sessions)
