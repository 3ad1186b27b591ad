"""Real quota from response headers: subscription (`anthropic-ratelimit-unified-*`) and
API-key (`anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-*`) limits.

Each response's headers are parsed into a QuotaView and merged field by field into the
newest view (a 429 carrying only retry-after keeps the utilization seen before). Values
that do not parse (not a number, not finite, absurd) are skipped, never raised.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from clauditor.clock import iso, parse_iso

UNIFIED = "anthropic-ratelimit-unified-"
# unified-<window>-<field>: windows are 5h, 7d and whatever a newer API adds (7d_opus...).
_WINDOW_FIELD = re.compile(
    r"^(\d+[mhd](?:_[a-z0-9]+)?)-(utilization|reset|status|surpassed-threshold)$"
)
_API_LIMIT = re.compile(
    r"^anthropic-ratelimit-(requests|tokens|input-tokens|output-tokens)-(limit|remaining|reset)$"
)
MAX_LABEL = 64
MAX_EPOCH = 1e11  # year 5138: anything larger is garbage, or milliseconds


def _label(v: str) -> str | None:
    v = v.strip()
    return v if v and len(v) <= MAX_LABEL and v.isprintable() else None


def _float(v: str) -> float | None:
    try:
        f = float(v.strip())
    except ValueError:
        return None
    return f if math.isfinite(f) else None


def _fraction(v: str) -> float | None:
    f = _float(v)
    return f if f is not None and 0.0 <= f <= 100.0 else None


def _epoch(v: str) -> float | None:
    f = _float(v)
    return f if f is not None and 0.0 < f < MAX_EPOCH else None


def _rfc3339(v: str) -> float | None:
    at = parse_iso(v)
    return _epoch(v) if at is None else at


def _count(v: str) -> int | None:
    v = v.strip()
    return int(v) if v.isdigit() and len(v) < 16 else None


@dataclass(slots=True)
class QuotaWindow:
    utilization: float | None = None  # 0..1, may exceed 1
    reset_at: float | None = None
    status: str | None = None
    surpassed_threshold: float | None = None

    def merge(self, other: QuotaWindow) -> None:
        for f in fields(self):
            value = getattr(other, f.name)
            if value is not None:
                setattr(self, f.name, value)

    def as_api(self) -> dict[str, Any]:
        return {
            "utilization": self.utilization,
            "reset_at": iso(self.reset_at),
            "status": self.status,
            "surpassed_threshold": self.surpassed_threshold,
        }


@dataclass(slots=True)
class ApiLimit:
    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None

    def merge(self, other: ApiLimit) -> None:
        for f in fields(self):
            value = getattr(other, f.name)
            if value is not None:
                setattr(self, f.name, value)

    def as_api(self) -> dict[str, Any]:
        return {"limit": self.limit, "remaining": self.remaining, "reset_at": iso(self.reset_at)}


@dataclass(slots=True)
class QuotaView:
    observed_at: float | None = None
    status: str | None = None  # allowed | allowed_warning | rejected
    reset_at: float | None = None
    representative_claim: str | None = None  # five_hour, seven_day, seven_day_opus...
    windows: dict[str, QuotaWindow] = field(default_factory=dict)  # "5h", "7d"...
    overage_status: str | None = None
    overage_utilization: float | None = None
    fallback: str | None = None  # available | unavailable
    fallback_percentage: float | None = None
    limits: dict[str, ApiLimit] = field(default_factory=dict)  # requests, tokens...
    retry_after_seconds: float | None = None

    def utilization(self) -> dict[str, float]:
        """Window -> fraction used, for the windows the headers reported."""
        windows = list(self.windows.items())  # a snapshot: metric readers run on their thread
        return {w: q.utilization for w, q in windows if q.utilization is not None}

    def merge(self, other: QuotaView) -> None:
        for f in fields(self):
            if f.name in ("windows", "limits"):
                continue
            value = getattr(other, f.name)
            if value is not None:
                setattr(self, f.name, value)
        for name, window in other.windows.items():
            self.windows.setdefault(name, QuotaWindow()).merge(window)
        for name, limit in other.limits.items():
            self.limits.setdefault(name, ApiLimit()).merge(limit)

    def copy(self) -> QuotaView:
        out = QuotaView()
        out.merge(self)
        return out

    def as_api(self) -> dict[str, Any]:
        return {
            "observed_at": iso(self.observed_at),
            "status": self.status,
            "reset_at": iso(self.reset_at),
            "representative_claim": self.representative_claim,
            "windows": {w: q.as_api() for w, q in sorted(self.windows.items())},
            "overage": {"status": self.overage_status, "utilization": self.overage_utilization},
            "fallback": {"status": self.fallback, "percentage": self.fallback_percentage},
            "limits": {n: x.as_api() for n, x in sorted(self.limits.items())},
            "retry_after_seconds": self.retry_after_seconds,
        }


def _unified(view: QuotaView, name: str, value: str) -> bool:
    if name == "status":
        view.status = _label(value)
    elif name == "reset":
        view.reset_at = _epoch(value)
    elif name == "representative-claim":
        view.representative_claim = _label(value)
    elif name == "overage-status":
        view.overage_status = _label(value)
    elif name == "overage-utilization":
        view.overage_utilization = _fraction(value)
    elif name == "fallback":
        view.fallback = _label(value)
    elif name == "fallback-percentage":
        view.fallback_percentage = _fraction(value)
    else:
        m = _WINDOW_FIELD.match(name)
        if m is None:
            return False
        window = view.windows.setdefault(m.group(1), QuotaWindow())
        what = m.group(2)
        if what == "utilization":
            window.utilization = _fraction(value)
        elif what == "reset":
            window.reset_at = _epoch(value)
        elif what == "status":
            window.status = _label(value)
        else:
            window.surpassed_threshold = _fraction(value)
    return True


def parse_quota(headers: Mapping[str, str], ts: float) -> QuotaView | None:
    """The quota headers of one response (lower-case names); None when there are none."""
    view = QuotaView(observed_at=ts)
    seen = False
    for raw_name, value in headers.items():
        name = raw_name.lower()
        if not isinstance(value, str):
            continue
        if name.startswith(UNIFIED):
            seen = _unified(view, name[len(UNIFIED) :], value) or seen
        elif name == "retry-after":
            view.retry_after_seconds = _epoch(value)  # seconds to wait: > 0 and sane
            seen = True
        else:
            m = _API_LIMIT.match(name)
            if m is None:
                continue
            limit = view.limits.setdefault(m.group(1), ApiLimit())
            if m.group(2) == "limit":
                limit.limit = _count(value)
            elif m.group(2) == "remaining":
                limit.remaining = _count(value)
            else:
                limit.reset_at = _rfc3339(value)
            seen = True
    return view if seen else None
