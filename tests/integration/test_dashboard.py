"""Every PromQL query of the Grafana dashboard, run by a real Prometheus scraping a real core
(`clauditor up`: Envoy and the core, with the fake Anthropic) that served a scripted demo
run, returns data (a series with a finite value): no panel is silently empty because of a
wrong metric or label name. Its totals also match what the core itself counted."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clauditor.sim.server import FakeUpstream
from tests.helpers import wait_until
from tests.integration.prometheus import (
    SCRAPE_SECONDS,
    drive_demo,
    prometheus_binary,
    query,
    running_prometheus,
)
from tests.integration.stack import Stack, start_stack
from tests.stack import dashboard as dash

pytestmark = pytest.mark.integration

# Below one demo run's ~65k tokens: the budget is exhausted, so the exhaustion gauge reads 0
# whatever the day of the week (a projection past Monday's reset has no sample).
WEEKLY_BUDGET = 50_000


@pytest.fixture
def prometheus_bin() -> str:
    return prometheus_binary()  # skips before anything starts when there is none


@pytest.fixture
def demo_stack(
    prometheus_bin: str, fake: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Stack]:
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("CLAUDITOR_WEEKLY_TOKEN_BUDGET", raising=False)
    monkeypatch.setenv("CLAUDITOR_END_TIMEOUT", "2")  # sessions end (and report their cost)
    budget = ("--weekly-token-budget", str(WEEKLY_BUDGET))
    stack = start_stack(fake.url, tmp_path, *budget, idle_timeout=1.0)
    try:
        yield stack
    finally:
        assert stack.stop() == 0, "\n".join(stack.log[-30:])


@pytest.fixture
def prometheus(prometheus_bin: str, demo_stack: Stack, tmp_path: Path) -> Iterator[str]:
    with running_prometheus(prometheus_bin, demo_stack.api, tmp_path) as url:
        yield url


def _last_scrape(prom: str) -> float:
    """When Prometheus last scraped the core (its wall clock, as time.time())."""
    result = query(prom, 'timestamp(up{job="clauditor"} == 1)')
    return float(result[0]["value"][1]) if result else 0.0


def _finite(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(r["value"][1])) for r in result)


def test_every_dashboard_query_returns_data(
    prometheus: str, demo_stack: Stack, fake: FakeUpstream
) -> None:
    board = dash.load()
    values = dash.variables(board)
    promql = dash.promql(board)
    # Nothing escapes the check: every other target is the Tempo one (checked for shape in
    # tests/stack/test_dashboard.py, as TraceQL is not PromQL).
    others = [t for t in dash.targets(board) if t not in promql]
    assert others and all(t.datasource_uid == "tempo" for t in others), [t.label for t in others]
    assert len(promql) >= 20

    # Prometheus's first scrape comes a few seconds after it is ready: wait for it.
    wait_until(lambda: _last_scrape(prometheus), timeout=20, interval=0.2)
    drive_demo(demo_stack, fake)
    # Then the same run again once Prometheus has seen the first: every series moves between
    # two scrapes, so rates and percentiles have something to show, not only totals.
    first = time.time()
    wait_until(lambda: _last_scrape(prometheus) > first, timeout=20, interval=0.2)
    drive_demo(demo_stack, fake)
    # Idle after 1 s, ended after 2 more: the sessions report their cost.
    wait_until(lambda: all(s["status"] == "ended" for s in demo_stack.sessions()), timeout=15)
    ended = time.time()
    wait_until(lambda: _last_scrape(prometheus) > ended + SCRAPE_SECONDS, timeout=20, interval=0.2)

    exprs = {t.label: dash.expand(t.target["expr"], values) for t in promql}
    pending = dict(exprs)
    errors: dict[str, str] = {}
    last: dict[str, list[dict[str, Any]]] = {}
    deadline = time.monotonic() + 20
    while pending:
        for label, expr in list(pending.items()):
            try:
                last[label] = query(prometheus, expr)
            except ValueError as e:  # a PromQL error: it will not fix itself
                errors[label] = str(e)
                del pending[label]
                continue
            if _finite(last[label]):
                del pending[label]
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(0.5)

    assert errors == {}, "queries Prometheus rejects:\n" + "\n".join(
        f"{label}: {error}" for label, error in errors.items()
    )
    assert pending == {}, "panels with no data:\n" + "\n".join(
        f"{label}: {'no series' if not last.get(label) else 'only NaN'}: {expr}"
        for label, expr in pending.items()
    )

    # The totals add up to what clauditor itself counted: nothing lost to Prometheus's
    # view of series that appear mid-range (the whole run is inside the range here).
    sessions = demo_stack.sessions()

    def total(title: str, ref: str = "A") -> float:
        return sum(float(r["value"][1]) for r in query(prometheus, exprs[f"{title!r} [{ref}]"]))

    def counted(field: str) -> float:
        return sum(s[field] or 0 for s in sessions)  # an unpriced session's cost is null

    assert total("Sessions started / ended") == len(sessions) == 6
    assert total("Sessions started / ended", "B") == 4  # the priced ones report their cost
    # One session per run on a model the catalog lacks: unpriced, and drift (asked for and
    # answered by that model).
    assert total("Unpriced requests / drift") == counted("unpriced_requests") == 2
    assert total("Unpriced requests / drift", "B") == 4
    assert total("Requests") == counted("requests") > 0
    assert total("Cost this week (estimate)") == pytest.approx(
        counted("estimated_cost_usd"), rel=1e-4
    )
    tokens = query(prometheus, exprs["'Tokens by type' [A]"])
    assert {r["metric"]["gen_ai_token_type"]: float(r["value"][1]) for r in tokens} == {
        kind: counted(f"{kind}_tokens")
        for kind in ("input", "output", "cache_read", "cache_creation")
    }
    assert total("Tool calls and failures by tool") == counted("tool_calls") == 6
    assert total("Tool calls and failures by tool", "B") == counted("tool_failures") == 2
    assert total("Fallbacks (requested → actual)") == counted("fallbacks") == 2
    assert total("Compactions") == counted("compactions") == 2
    assert total("Weekly budget runs out in (estimate)") == 0  # exhausted
