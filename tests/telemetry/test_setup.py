"""Providers from the environment, and telemetry that never breaks traffic."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator, Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from clauditor.telemetry.setup import (
    GRPC,
    HTTP_PROTOBUF,
    CountingBatchProcessor,
    CountingExporter,
    SignalExport,
    SpanAccounting,
    TelemetrySettings,
    build_providers,
    make_resource,
)


def test_nothing_configured_means_no_exporter() -> None:
    s = TelemetrySettings.from_env({})
    assert (s.traces, s.metrics, s.capture_content) == (None, None, False)
    providers = build_providers(s, make_resource("1.0"))
    assert providers.exporting == ()
    assert providers.registry is not None  # /metrics works regardless
    providers.shutdown(timeout=1.0)


def test_standard_variables() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}
    s = TelemetrySettings.from_env(env)
    # The exporters read the variables themselves (paths, headers, timeouts, TLS).
    assert s.traces == SignalExport(GRPC, None) and s.metrics == SignalExport(GRPC, None)
    s = TelemetrySettings.from_env(
        {
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://tempo:4318/v1/traces",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        }
    )
    assert s.traces == SignalExport(HTTP_PROTOBUF, None)
    assert s.metrics is None  # only traces were given an endpoint
    s = TelemetrySettings.from_env(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_METRICS_EXPORTER": "none"}
    )
    assert s.traces is not None and s.metrics is None
    assert (
        TelemetrySettings.from_env(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_SDK_DISABLED": "true"}
        )
        == TelemetrySettings()
    )


def test_flag_is_a_base_endpoint_and_wins() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://elsewhere:4317"}
    s = TelemetrySettings.from_env(env, otlp_endpoint="127.0.0.1:4317")
    assert s.traces == SignalExport(GRPC, "http://127.0.0.1:4317")
    s = TelemetrySettings.from_env(
        {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, otlp_endpoint="http://phoenix:6006/"
    )
    assert s.traces == SignalExport(HTTP_PROTOBUF, "http://phoenix:6006/v1/traces")
    assert s.metrics == SignalExport(HTTP_PROTOBUF, "http://phoenix:6006/v1/metrics")


def test_content_capture_switch() -> None:
    key = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
    assert TelemetrySettings.from_env({key: "true"}).capture_content is True
    assert TelemetrySettings.from_env({key: "false"}).capture_content is False
    assert TelemetrySettings.from_env({}).capture_content is False


def test_resource_defaults_and_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    r = make_resource("1.2.3").attributes
    assert (r["service.name"], r["service.version"]) == ("clauditor", "1.2.3")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "my-clauditor")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "host.name=laptop,team=dev")
    r = make_resource("1.2.3").attributes
    assert (r["service.name"], r["host.name"], r["team"]) == ("my-clauditor", "laptop", "dev")


class BlackHole(SpanExporter):
    """An exporter stuck on a collector that never answers (until shutdown)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.calls += 1
        self.release.wait(30)
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self.release.set()


def test_black_holed_exporter_drops_counted_in_bounded_memory(
    caplog: pytest.LogCaptureFixture,
) -> None:
    accounting = SpanAccounting()
    hole = BlackHole()
    processor = CountingBatchProcessor(
        CountingExporter(hole, accounting), max_queue_size=100, max_export_batch_size=10
    )
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="clauditor.telemetry.setup"):
        for i in range(1000):
            tracer.start_span(f"s{i}").end()
    assert time.monotonic() - started < 5  # ending spans never waits for the exporter
    assert accounting.queued <= 100
    assert accounting.dropped >= 1000 - 100 - 10  # queue full: counted, not buffered
    assert "spans dropped" in caplog.text
    hole.shutdown()
    provider.shutdown()
    assert accounting.exported == 0
    assert accounting.dropped + accounting.queued >= 990


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conns.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(2)
    for c in conns:
        c.close()
    server.close()


@pytest.mark.parametrize("protocol", [GRPC, HTTP_PROTOBUF])
def test_real_exporter_against_a_silent_collector_stops_in_bounded_time(
    protocol: str, silent_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    endpoint = f"http://127.0.0.1:{silent_port}"
    settings = TelemetrySettings.from_env(
        {"OTEL_EXPORTER_OTLP_PROTOCOL": protocol, "OTEL_METRICS_EXPORTER": "none"},
        otlp_endpoint=endpoint,
    )
    providers = build_providers(settings, make_resource("test"))
    assert providers.exporting
    tracer = providers.tracer_provider.get_tracer("test")
    for i in range(50):
        tracer.start_span(f"s{i}").end()
    started = time.monotonic()
    providers.shutdown(timeout=2.0)
    assert time.monotonic() - started < 4
    assert providers.accounting.exported == 0


def test_http_protobuf_export_reaches_a_real_receiver() -> None:
    """OTLP/HTTP: a loopback HTTP server decodes what the exporter POSTs to /v1/traces."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    from clauditor.clock import ManualClock
    from clauditor.sessions.tracker import SessionTracker
    from clauditor.telemetry import Telemetry
    from tests.helpers import fixture_posts
    from tests.sessions.replay import Replayer

    received: list[tuple[str, str, str]] = []  # (path, content type, span name)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            request = ExportTraceServiceRequest.FromString(body)
            for rs in request.resource_spans:
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        received.append((self.path, self.headers["Content-Type"], span.name))
            out = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        settings = TelemetrySettings.from_env(
            {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_METRICS_EXPORTER": "none"},
            otlp_endpoint=f"127.0.0.1:{server.server_address[1]}",
        )
        providers = build_providers(settings, make_resource("test"))
        clock = ManualClock()
        telemetry = Telemetry(providers, clock)
        tracker = SessionTracker(clock, listeners=telemetry.listeners, spans=telemetry.traces)
        replay = Replayer(tracker, clock)
        for record in fixture_posts("b_tool_bash"):
            replay.exchange(record)
        telemetry.shutdown(timeout=5.0)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert sorted(name for _, _, name in received) == [
        "chat claude-opus-4-8",
        "chat claude-opus-4-8",
        "execute_tool Bash",
        "invoke_agent claude-code",
    ]
    assert {(path, ctype) for path, ctype, _ in received} == {
        ("/v1/traces", "application/x-protobuf")
    }
    assert providers.accounting.exported == 4


def test_each_cause_of_dropped_spans_gets_its_own_warning(caplog: pytest.LogCaptureFixture) -> None:
    """A failed export's warning must not silence the queue-full one that follows (the
    black-holed collector test saw only the first)."""
    acct = SpanAccounting()
    with caplog.at_level("WARNING", logger="clauditor.telemetry.setup"):
        acct.drop(512, "export failed")
        acct.drop(1, "export queue full")
        acct.drop(1, "export queue full")  # within the minute: counted, not repeated
        acct.drop(3, "export failed")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "512 spans dropped (export failed); 512 in total",
        "1 spans dropped (export queue full); 513 in total",
    ]
    assert acct.dropped == 517
