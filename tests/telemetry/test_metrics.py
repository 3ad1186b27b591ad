"""Metric values from fixture replays, read from an InMemoryMetricReader."""

from __future__ import annotations

import copy
from typing import Any

from clauditor.sessions.models import ToolCall
from clauditor.sessions.signals.quota import parse_quota
from clauditor.telemetry import names as n
from clauditor.telemetry.metrics import OTHER, LabelGuard
from tests.helpers import fixture_posts
from tests.telemetry.conftest import Rig, make_rig
from tests.telemetry.test_names import STATS

Points = list[tuple[dict[str, Any], Any]]


def points(rig: Rig, spec: n.MetricSpec) -> Points:
    data = rig.reader.get_metrics_data()
    out: Points = []
    if data is None:
        return out
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == spec.name:
                    out += [(dict(p.attributes or {}), p) for p in metric.data.data_points]
    return out


def value(rig: Rig, spec: n.MetricSpec, **labels: Any) -> float:
    """Sum of the counter points whose attributes include `labels`."""
    want = {k.replace("__", "."): v for k, v in labels.items()}
    return sum(p.value for attrs, p in points(rig, spec) if want.items() <= attrs.items())


def hist(rig: Rig, spec: n.MetricSpec, **labels: Any) -> tuple[int, float]:
    want = {k.replace("__", "."): v for k, v in labels.items()}
    found = [p for attrs, p in points(rig, spec) if want.items() <= attrs.items()]
    return sum(p.count for p in found), sum(p.sum for p in found)


def _round_trip(rig: Rig) -> None:
    first, second = fixture_posts("b_tool_bash")
    rig.replay.exchange(first, duration=2.0)
    rig.clock.advance(0.25)
    rig.replay.exchange(second, duration=1.0)


def test_genai_histograms_follow_the_anthropic_token_rule(rig: Rig) -> None:
    _round_trip(rig)
    spec = n.GEN_AI_CLIENT_TOKEN_USAGE
    inputs = hist(rig, spec, gen_ai__token__type="input")
    assert inputs == (2, (1559 + 17552) + (41 + 17552 + 1609))
    assert hist(rig, spec, gen_ai__token__type="output") == (2, 18 + 19)
    assert hist(rig, spec, gen_ai__token__type="cache_read") == (2, 17552)
    assert hist(rig, spec, gen_ai__token__type="cache_creation") == (2, 17552 + 1609)
    (attrs, point), *_ = points(rig, spec)
    assert attrs[n.GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[n.GEN_AI_PROVIDER_NAME] == "anthropic"
    assert attrs[n.GEN_AI_REQUEST_MODEL] == "claude-opus-4-8"
    assert attrs[n.SERVER_ADDRESS] == "api.anthropic.com"
    assert list(point.explicit_bounds) == list(n.TOKEN_BUCKETS)
    assert hist(rig, n.GEN_AI_CLIENT_OPERATION_DURATION) == (2, 3.0)
    (_, duration), *_ = points(rig, n.GEN_AI_CLIENT_OPERATION_DURATION)
    assert list(duration.explicit_bounds) == list(n.DURATION_BUCKETS)
    assert hist(rig, n.GEN_AI_CLIENT_TIME_TO_FIRST_CHUNK) == (2, 1.5)


def test_clauditor_counters_for_a_tool_round_trip(rig: Rig) -> None:
    _round_trip(rig)
    assert value(rig, n.REQUESTS, clauditor__outcome="ok", clauditor__request__kind="main") == 2
    # clauditor.tokens counts as Anthropic bills: input without the cached tokens.
    assert value(rig, n.TOKENS, gen_ai__token__type="input") == 1559 + 41
    assert value(rig, n.TOKENS, gen_ai__token__type="cache_read") == 17552
    assert value(rig, n.COST) > 0
    assert value(rig, n.CACHE_EVENTS, clauditor__cache__status="cold") == 1
    assert value(rig, n.CACHE_EVENTS, clauditor__cache__status="hit") == 1
    assert value(rig, n.TOOL_CALLS, gen_ai__tool__name="Bash") == 1
    assert value(rig, n.TOOL_FAILURES) == 0
    assert hist(rig, n.TURN_DURATION, clauditor__outcome="completed") == (1, 3.25)
    # Its time by part: 2 s and 1 s exchanges (first token halfway), a 0.25 s tool.
    assert hist(rig, n.TURN_TIME, clauditor__time__part="waiting_for_model") == (1, 1.5)
    assert hist(rig, n.TURN_TIME, clauditor__time__part="generating") == (1, 1.5)
    assert hist(rig, n.TURN_TIME, clauditor__time__part="tools") == (1, 0.25)
    assert hist(rig, n.TURN_TIME, clauditor__time__part="retries") == (1, 0.0)
    count, fill = hist(rig, n.CONTEXT_FILL_METRIC, gen_ai__request__model="claude-opus-4-8")
    assert count == 1 and fill == (41 + 17552 + 1609) / 1_000_000  # once, at the turn's end


def test_errors_fallbacks_and_tool_failures() -> None:
    rig = make_rig()
    for record in fixture_posts("f_529_retry"):
        rig.replay.exchange(record, duration=0.1)
    assert value(rig, n.ERRORS, error__type="overloaded_error") == 3
    assert value(rig, n.REQUESTS, clauditor__outcome="error") == 3
    errored = [a for a, _ in points(rig, n.GEN_AI_CLIENT_OPERATION_DURATION) if n.ERROR_TYPE in a]
    assert errored and errored[0][n.ERROR_TYPE] == "overloaded_error"

    (plain,) = fixture_posts("a_plain_text")
    swapped = copy.deepcopy(plain)
    swapped["response"]["model"] = "claude-sonnet-4-6"
    rig.replay.exchange(swapped)
    requested = plain["body"]["model"]
    assert (
        value(
            rig,
            n.FALLBACKS,
            clauditor__fallback__requested=requested,
            clauditor__fallback__actual="claude-sonnet-4-6",
        )
        == 1
    )

    first, second = fixture_posts("b_tool_bash")
    rig.replay.exchange(first)
    failed = copy.deepcopy(second)
    last = failed["body"]["messages"][-1]
    last["content"] = [dict(b, is_error=True) for b in last["content"]]
    rig.replay.exchange(failed)
    assert value(rig, n.TOOL_FAILURES, gen_ai__tool__name="Bash") == 1
    rig.telemetry.shutdown(timeout=1.0)


def test_session_cost_when_it_ends_and_gauges(rig: Rig) -> None:
    rig.telemetry.observe(rig.tracker, lambda: STATS)
    _round_trip(rig)
    assert value(rig, n.ACTIVE_SESSIONS, clauditor__status="active") == 1
    assert hist(rig, n.SESSION_COST)[0] == 0
    session = next(iter(rig.tracker.sessions.values()))
    cost = session.signals.cost_usd
    assert cost > 0
    rig.clock.advance(301)
    rig.tracker.tick()
    assert value(rig, n.ACTIVE_SESSIONS, clauditor__status="idle") == 1
    rig.clock.advance(1800)
    rig.tracker.tick()
    assert hist(rig, n.SESSION_COST) == (1, cost)
    assert value(rig, n.ACTIVE_SESSIONS) == 0
    assert value(rig, n.WEEKLY_TOKENS_USED) > 0


def test_sessions_started_counts_new_sessions_not_resumed_ones(rig: Rig) -> None:
    first, second = fixture_posts("b_tool_bash")
    rig.replay.exchange(first)
    for record in fixture_posts("f_529_retry"):
        rig.replay.exchange(record)
    assert len(rig.tracker.sessions) == 2
    assert value(rig, n.SESSIONS_STARTED) == 2
    # A core restart: the session comes back from the store, it does not start again.
    (sid, session), *_ = [
        (k, v) for k, v in rig.tracker.sessions.items() if k in str(first["headers"])
    ]
    rig.tracker.sessions.pop(sid)
    rig.tracker.loader = lambda wanted: copy.deepcopy(session) if wanted == sid else None
    rig.replay.exchange(second)
    assert sid in rig.tracker.sessions
    assert value(rig, n.SESSIONS_STARTED) == 2


def test_quota_and_weekly_budget_gauges(rig: Rig) -> None:
    rig.telemetry.observe(rig.tracker, lambda: STATS)
    assert points(rig, n.QUOTA_UTILIZATION) == []
    headers = {
        "anthropic-ratelimit-unified-5h-utilization": "0.25",
        "anthropic-ratelimit-unified-7d-utilization": "0.5",
    }
    rig.tracker.signals.quota = parse_quota(headers, rig.clock.now())
    assert value(rig, n.QUOTA_UTILIZATION, clauditor__quota__window="5h") == 0.25
    assert value(rig, n.QUOTA_UTILIZATION, clauditor__quota__window="7d") == 0.5
    assert points(rig, n.WEEKLY_TOKENS_BUDGET) == []
    weekly = rig.tracker.signals.weekly
    weekly.budget = 100_000
    _round_trip(rig)
    assert value(rig, n.WEEKLY_TOKENS_BUDGET) == 100_000
    (_, point), *_ = points(rig, n.WEEKLY_EXHAUSTION)
    assert point.value > 0  # tokens burnt in the last hour project an exhaustion
    weekly.budget = 1
    (_, point), *_ = points(rig, n.WEEKLY_EXHAUSTION)
    assert point.value == 0  # already exhausted


def test_core_health_counters(rig: Rig) -> None:
    rig.telemetry.observe(rig.tracker, lambda: STATS)
    assert value(rig, n.WIRE_STREAMS, clauditor__state="opened") == 4
    assert value(rig, n.WIRE_STREAMS, clauditor__state="failed") == 1
    assert value(rig, n.WIRE_ERRORS, error__type="reset") == 1
    assert value(rig, n.INTERPRETER_BAD_INPUT, clauditor__reason="bad_request") == 1
    assert value(rig, n.INTERPRETER_BAD_INPUT, clauditor__reason="decompression_bomb") == 0
    assert value(rig, n.STORE_PAUSED, clauditor__reason="disk full") == 1
    assert value(rig, n.STORE_ROWS_PENDING) == 3
    assert value(rig, n.INTERPRETER_BAD_INPUT, clauditor__reason="malformed_event") == 2
    assert value(rig, n.INTERPRETER_EXCHANGES, clauditor__state="ignored") == 1
    assert (
        value(rig, n.BUS_EVENTS, clauditor__consumer="tracker", clauditor__outcome="dropped") == 1
    )
    assert value(rig, n.STORE_WRITE_ERRORS) == 1
    assert value(rig, n.TRACKER_ANOMALIES, clauditor__reason="hold_timeout") == 2
    assert value(rig, n.TRACKER_ANOMALIES, clauditor__reason="late_prompt") == 1
    assert value(rig, n.STORE_ROWS) == 7
    assert value(rig, n.TELEMETRY_SPANS, clauditor__state="dropped") == 0


def test_a_failing_stats_read_yields_nothing_not_an_error(rig: Rig) -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("stats unavailable")

    rig.telemetry.observe(rig.tracker, broken)
    assert points(rig, n.WIRE_STREAMS) == []
    assert value(rig, n.ACTIVE_SESSIONS) == 0  # other instruments still report


def test_labels_never_carry_a_session_id_and_stay_bounded(rig: Rig) -> None:
    rig.telemetry.observe(rig.tracker, lambda: STATS)
    _round_trip(rig)
    for record in fixture_posts("f_529_retry"):
        rig.replay.exchange(record)
    session_ids = set(rig.tracker.sessions)
    data = rig.reader.get_metrics_data()
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for p in metric.data.data_points:
                    attrs = dict(p.attributes or {})
                    assert n.SESSION_ID not in attrs and n.GEN_AI_CONVERSATION_ID not in attrs
                    assert not session_ids & {str(v) for v in attrs.values()}, metric.name

    # A client inventing tool names cannot blow up the series count.
    metrics = rig.telemetry.metrics
    for i in range(300):
        call = ToolCall(f"toolu_{i}", f"tool_{i}", "s", None, 1, "", 0.0)
        metrics.tool_use(rig.tracker.sessions[next(iter(session_ids))], call)
    tools = {a[n.GEN_AI_TOOL_NAME] for a, _ in points(rig, n.TOOL_CALLS)}
    assert len(tools) <= 101 and OTHER in tools


def test_label_guard() -> None:
    guard = LabelGuard(limit=2)
    assert [guard("a"), guard("b"), guard("c"), guard("a"), guard(None)] == [
        "a",
        "b",
        OTHER,
        "a",
        "unknown",
    ]
