"""OpenTelemetry traces and metrics for clauditor (names in clauditor.telemetry.names).

`Telemetry` bundles the tracker's span recorder (traces) and its metrics listener with the
providers they write to; the core builds it from the environment, tests from in-memory providers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from clauditor.clock import Clock
from clauditor.sessions.listener import TrackerListener
from clauditor.sessions.tracker import SessionTracker
from clauditor.telemetry.metrics import MetricsListener, Observables
from clauditor.telemetry.setup import (
    Providers,
    TelemetrySettings,
    build_providers,
    make_resource,
)
from clauditor.telemetry.traces import TraceListener

__all__ = ["Providers", "Telemetry", "TelemetrySettings"]

log = logging.getLogger(__name__)


class Telemetry:
    def __init__(
        self,
        providers: Providers,
        clock: Clock,
        *,
        server: tuple[str, int] | None = None,
        capture_content: bool = False,
    ) -> None:
        self.providers = providers
        self.traces = TraceListener(
            providers.tracer_provider, clock, server=server, capture_content=capture_content
        )
        self.metrics = MetricsListener(
            providers.meter_provider, server_address=server[0] if server else None
        )
        self.observables: Observables | None = None

    @classmethod
    def from_env(
        cls,
        version: str,
        clock: Clock,
        *,
        server: tuple[str, int] | None = None,
        otlp_endpoint: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Telemetry:
        settings = TelemetrySettings.from_env(os.environ if env is None else env, otlp_endpoint)
        providers = build_providers(settings, make_resource(version))
        for line in providers.exporting:
            log.info("exporting %s", line)
        return cls(providers, clock, server=server, capture_content=settings.capture_content)

    @property
    def listeners(self) -> list[TrackerListener]:
        """For SessionTracker(listeners=...); the traces go in as its `spans=`."""
        return [self.metrics]

    def observe(self, tracker: SessionTracker, stats: Callable[[], dict[str, Any]]) -> None:
        """Register the gauges and health counters read from the tracker and Core.stats()."""
        self.observables = Observables(
            self.providers.meter_provider, tracker, stats, self.span_stats
        )

    def span_stats(self) -> dict[str, int]:
        acct = self.providers.accounting
        return {
            "exported": acct.exported,
            "dropped": acct.dropped,
            "queued": acct.queued,
            "open": self.traces.open_spans(),
        }

    def prometheus(self, accept: str | None = None) -> tuple[bytes, str] | None:
        """The /metrics body and content type for the scraper's Accept header (classic text
        format by default, OpenMetrics on request), or None without a Prometheus reader."""
        if self.providers.registry is None:
            return None
        from prometheus_client.exposition import choose_encoder

        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.providers.registry), content_type

    def shutdown(self, timeout: float = 3.0) -> None:
        """End every open span (nothing leaks), then flush within `timeout` seconds."""
        try:
            self.traces.close_all()
        except Exception:
            log.exception("closing open spans failed")
        self.providers.shutdown(timeout)
