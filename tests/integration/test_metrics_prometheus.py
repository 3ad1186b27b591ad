"""A real Prometheus scrapes the core's /metrics while traffic flows through real Envoy;
its HTTP API must then have data for every metric clauditor declares."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clauditor.sim.server import FakeUpstream
from clauditor.telemetry import names as n
from tests.helpers import wait_until
from tests.integration.prometheus import (
    budget_supported,
    drive_demo,
    prometheus_binary,
    running_prometheus,
)
from tests.integration.stack import Stack, start_stack

pytestmark = pytest.mark.integration


@pytest.fixture
def metrics_stack(
    fake: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Stack]:
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CLAUDITOR_END_TIMEOUT", "2")  # sessions end (and report their cost)
    if budget_supported():
        monkeypatch.setenv("CLAUDITOR_WEEKLY_TOKEN_BUDGET", "1000")
    stack = start_stack(fake.url, tmp_path, idle_timeout=1.0)
    try:
        yield stack
    finally:
        assert stack.stop() == 0, "\n".join(stack.log[-30:])


@pytest.fixture
def prometheus_bin() -> str:
    return prometheus_binary()  # skips before anything starts when there is none


@pytest.fixture
def prometheus(prometheus_bin: str, metrics_stack: Stack, tmp_path: Path) -> Iterator[str]:
    with running_prometheus(prometheus_bin, metrics_stack.api, tmp_path) as url:
        yield url


def _has_data(prom: str, name: str) -> bool:
    query = f'{{__name__=~"{name}|{name}_count"}}'
    r = httpx.get(f"{prom}/api/v1/query", params={"query": query}, timeout=5, trust_env=False)
    r.raise_for_status()
    return bool(r.json()["data"]["result"])


def test_every_metric_reaches_a_real_prometheus(
    prometheus: str, metrics_stack: Stack, fake: FakeUpstream
) -> None:
    drive_demo(metrics_stack, fake)
    # Idle after 1 s, ended after 2 more: the sessions report their cost.
    wait_until(lambda: all(s["status"] == "ended" for s in metrics_stack.sessions()), timeout=15)

    expected = [m.prometheus for m in n.METRICS]
    if not budget_supported():
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
