from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from clauditor.clock import ManualClock
from clauditor.sessions.tracker import SessionTracker
from clauditor.telemetry import Providers, Telemetry
from tests.sessions.replay import Replayer


@dataclass
class Rig:
    clock: ManualClock
    tracker: SessionTracker
    telemetry: Telemetry
    spans_out: InMemorySpanExporter
    reader: InMemoryMetricReader
    replay: Replayer

    def spans(self) -> list[ReadableSpan]:
        return list(self.spans_out.get_finished_spans())

    def named(self, prefix: str) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.name.startswith(prefix)]


def make_rig(capture_content: bool = False, stats: dict | None = None) -> Rig:
    clock = ManualClock(1_750_000_000.0)
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    telemetry = Telemetry(
        Providers(tracer_provider, meter_provider),
        clock,
        server=("api.anthropic.com", 443),
        capture_content=capture_content,
    )
    tracker = SessionTracker(clock, listeners=telemetry.listeners, spans=telemetry.traces)
    return Rig(clock, tracker, telemetry, exporter, reader, Replayer(tracker, clock))


@pytest.fixture
def rig() -> Iterator[Rig]:
    made = make_rig()
    yield made
    made.telemetry.shutdown(timeout=1.0)
