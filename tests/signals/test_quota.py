"""Quota headers: subscription (unified) and API-key limits, merged, hostile values skipped."""

from __future__ import annotations

from clauditor.sessions.signals.quota import parse_quota

T0 = 1_800_000_000.0

WARNING = {
    "anthropic-ratelimit-unified-status": "allowed_warning",
    "anthropic-ratelimit-unified-reset": "1800018000",
    "anthropic-ratelimit-unified-representative-claim": "five_hour",
    "anthropic-ratelimit-unified-5h-utilization": "0.93",
    "anthropic-ratelimit-unified-5h-reset": "1800018000",
    "anthropic-ratelimit-unified-5h-status": "allowed_warning",
    "anthropic-ratelimit-unified-5h-surpassed-threshold": "0.9",
    "anthropic-ratelimit-unified-7d-utilization": "0.41",
    "anthropic-ratelimit-unified-7d-reset": "1800400000",
    "anthropic-ratelimit-unified-7d-status": "allowed",
    "anthropic-ratelimit-unified-overage-status": "rejected",
    "anthropic-ratelimit-unified-fallback": "available",
    "anthropic-ratelimit-unified-fallback-percentage": "0.5",
}


def test_subscription_headers_at_allowed_warning() -> None:
    view = parse_quota(WARNING, T0)
    assert view is not None
    assert view.utilization() == {"5h": 0.93, "7d": 0.41}
    api = view.as_api()
    assert api["observed_at"] == "2027-01-15T08:00:00.000Z"
    assert api["status"] == "allowed_warning"
    assert api["reset_at"] == "2027-01-15T13:00:00.000Z"
    assert api["representative_claim"] == "five_hour"
    assert api["windows"]["5h"] == {
        "utilization": 0.93,
        "reset_at": "2027-01-15T13:00:00.000Z",
        "status": "allowed_warning",
        "surpassed_threshold": 0.9,
    }
    assert api["windows"]["7d"]["status"] == "allowed"
    assert api["overage"] == {"status": "rejected", "utilization": None}
    assert api["fallback"] == {"status": "available", "percentage": 0.5}
    assert api["limits"] == {}


def test_api_key_limits_and_retry_after() -> None:
    view = parse_quota(
        {
            "anthropic-ratelimit-requests-limit": "4000",
            "anthropic-ratelimit-requests-remaining": "3999",
            "anthropic-ratelimit-requests-reset": "2027-01-15T08:00:30Z",
            "anthropic-ratelimit-input-tokens-limit": "2000000",
            "anthropic-ratelimit-input-tokens-remaining": "1990000",
            "anthropic-ratelimit-input-tokens-reset": "2027-01-15T08:00:01+00:00",
            "retry-after": "7",
        },
        T0,
    )
    assert view is not None
    api = view.as_api()
    assert api["limits"]["requests"] == {
        "limit": 4000,
        "remaining": 3999,
        "reset_at": "2027-01-15T08:00:30.000Z",
    }
    assert api["limits"]["input-tokens"]["remaining"] == 1_990_000
    assert api["retry_after_seconds"] == 7.0
    assert api["windows"] == {}


def test_merge_keeps_what_a_later_response_does_not_say() -> None:
    view = parse_quota(WARNING, T0)
    assert view is not None
    later = parse_quota(
        {"retry-after": "3", "anthropic-ratelimit-unified-5h-utilization": "0.97"}, T0 + 60
    )
    assert later is not None
    view.merge(later)
    assert view.utilization() == {"5h": 0.97, "7d": 0.41}
    assert view.status == "allowed_warning"
    assert view.retry_after_seconds == 3.0
    assert view.observed_at == T0 + 60


def test_no_quota_headers_and_hostile_values() -> None:
    assert parse_quota({}, T0) is None
    assert parse_quota({"content-type": "text/event-stream"}, T0) is None
    view = parse_quota(
        {
            "anthropic-ratelimit-unified-5h-utilization": "nan",
            "anthropic-ratelimit-unified-7d-utilization": "-1",
            "anthropic-ratelimit-unified-reset": "1e300",
            "anthropic-ratelimit-unified-status": "x" * 500,
            "anthropic-ratelimit-requests-limit": "lots",
            "anthropic-ratelimit-tokens-reset": "yesterday",
            "anthropic-ratelimit-unified-something-new": "1",
        },
        T0,
    )
    assert view is not None
    api = view.as_api()
    assert view.utilization() == {}
    assert (api["status"], api["reset_at"]) == (None, None)
    assert api["limits"]["requests"]["limit"] is None
    assert api["limits"]["tokens"]["reset_at"] is None
