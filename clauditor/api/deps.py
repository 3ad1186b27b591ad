"""What the API needs from the rest of clauditor, as small protocols: the composition root
(`clauditor.core`) hands `create_app` an `ApiDeps`, and a test may hand it its own. The
API never sees the `Core`, so it cannot reach into it, and the import goes one way."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from clauditor.api.queries import SessionQueries
from clauditor.broadcast.hub import WatchHub
from clauditor.clock import Clock
from clauditor.sessions.models import RequestRecord, Session
from clauditor.sessions.signals.prices import PriceTable


class GlobalSignals(Protocol):
    """The machine-wide signals (sessions.signals.engine.SignalEngine)."""

    @property
    def prices(self) -> PriceTable: ...
    def quota_view(self) -> dict[str, Any] | None: ...
    def weekly_view(self) -> dict[str, Any]: ...
    def learned_thresholds(self) -> dict[str, int | None]: ...


class LiveTracker(Protocol):
    """The live sessions (sessions.tracker.SessionTracker), for the status line."""

    @property
    def sessions(self) -> Mapping[str, Session]: ...
    @property
    def signals(self) -> GlobalSignals: ...
    def recent_requests(self, session_id: str) -> list[RequestRecord]: ...


class History(Protocol):
    """The stored history (store.store.Store)."""

    async def summary(self, now: float) -> dict[str, Any]: ...
    async def models_seen(self) -> list[dict[str, Any]]: ...
    async def report(self, days: int, by: str, now: float) -> dict[str, Any]: ...
    async def recall(
        self, text: str, limit: int = 10, days: float | None = None
    ) -> list[dict[str, Any]]: ...
    async def diagnosis(self, session_id: str) -> dict[str, Any] | None: ...


class AlertViews(Protocol):
    """Open and recent alerts (sessions.alerts.AlertEngine)."""

    def view(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ApiDeps:
    version: str
    clock: Clock
    # Host headers the API answers (the DNS-rebinding guard).
    allowed_hosts: tuple[str, ...]
    tracker: LiveTracker
    queries: SessionQueries
    history: History
    alerts: AlertViews
    watch: WatchHub
    # The core's counters (`/api/stats`).
    stats: Callable[[], dict[str, Any]]
    # The /metrics body and content type for an Accept header; None: no Prometheus reader.
    metrics: Callable[[str | None], tuple[bytes, str] | None]
