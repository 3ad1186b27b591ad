"""Build the tracer and meter providers from the standard OTEL_ variables and --otlp-endpoint.

Nothing here touches the global providers: the core passes what this returns to its
listeners, and tests pass in-memory ones instead.

- No endpoint configured → no exporter, no error: traces stay in-process (ids still go to
  the store) and metrics are only served on /metrics.
- Telemetry never breaks traffic: spans wait in a bounded queue; an exporter that is down
  or black-holed makes them drop, counted (`clauditor_telemetry_spans_total{state=dropped}`)
  with a rate-limited warning, and shutdown waits a bounded time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from prometheus_client import CollectorRegistry

log = logging.getLogger(__name__)

GRPC = "grpc"
HTTP_PROTOBUF = "http/protobuf"
PROTOCOLS = (GRPC, HTTP_PROTOBUF)
CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
MAX_QUEUE = 2048  # finished spans waiting for the exporter, at most
WARN_EVERY = 60.0  # seconds between two "spans dropped" warnings
# Another package can ship its own, older opentelemetry/proto/* (xds-protos does) and
# overwrite the files the OTLP exporters need (ImportError: InstrumentationScope).
PROTO_CLASH_HINT = (
    "If another package overwrote opentelemetry-proto's files, restore them with: pip install "
    '--force-reinstall --no-deps "opentelemetry-proto==$(pip show opentelemetry-proto '
    "| sed -n 's/^Version: //p')\""
)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _protocol(value: str | None) -> str:
    proto = (value or GRPC).strip().lower()
    if proto not in PROTOCOLS:
        log.warning("OTLP protocol %r is not supported; using %s", proto, HTTP_PROTOBUF)
        return HTTP_PROTOBUF
    return proto


def normalize_endpoint(url: str) -> str:
    """`host:4317` → `http://host:4317`: a bare address is the local, plaintext case."""
    url = url.strip()
    return url if urlsplit(url).scheme in ("http", "https") else f"http://{url}"


@dataclass(frozen=True)
class SignalExport:
    protocol: str
    endpoint: str | None  # None: the exporter reads its OTEL_ variables itself


@dataclass(frozen=True)
class TelemetrySettings:
    traces: SignalExport | None = None
    metrics: SignalExport | None = None
    capture_content: bool = False

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], otlp_endpoint: str | None = None
    ) -> TelemetrySettings:
        """The standard variables; --otlp-endpoint, like OTEL_EXPORTER_OTLP_ENDPOINT, is the
        base address for both signals and wins over the variables."""
        base = (env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "").strip()
        disabled = _truthy(env.get("OTEL_SDK_DISABLED"))

        def signal(name: str) -> SignalExport | None:
            if disabled or (env.get(f"OTEL_{name}_EXPORTER") or "").strip().lower() == "none":
                return None
            proto = _protocol(
                env.get(f"OTEL_EXPORTER_OTLP_{name}_PROTOCOL")
                or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            )
            path = "/v1/traces" if name == "TRACES" else "/v1/metrics"
            if otlp_endpoint:
                url = normalize_endpoint(otlp_endpoint)
                if proto == HTTP_PROTOBUF:
                    url = url.rstrip("/") + path
                return SignalExport(proto, url)
            if (env.get(f"OTEL_EXPORTER_OTLP_{name}_ENDPOINT") or "").strip() or base:
                return SignalExport(proto, None)
            return None

        return cls(
            traces=signal("TRACES"),
            metrics=signal("METRICS"),
            capture_content=_truthy(env.get(CAPTURE_CONTENT_ENV)),
        )


def make_resource(version: str) -> Resource:
    """service.name `clauditor` unless OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES say
    otherwise (the variables win, as users expect)."""
    base = Resource.create({"service.name": "clauditor", "service.version": version})
    return base.merge(OTELResourceDetector().detect())


@dataclass
class SpanAccounting:
    """What became of finished spans once they left the tracer."""

    exported: int = 0
    dropped: int = 0
    queued: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # Per cause (queue full, export failed, ...): one cause's warning never hides another's.
    _warned_at: dict[str, float] = field(default_factory=dict, repr=False)
    _dropped_by: dict[str, int] = field(default_factory=dict, repr=False)
    _warned_dropped: dict[str, int] = field(default_factory=dict, repr=False)

    def drop(self, count: int, why: str) -> None:
        with self._lock:
            self.dropped += count
            self._dropped_by[why] = self._dropped_by.get(why, 0) + count
            now = time.monotonic()
            if now - self._warned_at.get(why, -WARN_EVERY) < WARN_EVERY:
                return
            self._warned_at[why] = now
            new = self._dropped_by[why] - self._warned_dropped.get(why, 0)
            self._warned_dropped[why] = self._dropped_by[why]
            total = self.dropped
        log.warning("%d spans dropped (%s); %d in total", new, why, total)


class CountingExporter(SpanExporter):
    """Wraps the real exporter: counts what it delivered and what it lost."""

    def __init__(self, inner: SpanExporter, accounting: SpanAccounting) -> None:
        self.inner = inner
        self.accounting = accounting

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        acct = self.accounting
        with acct._lock:
            acct.queued = max(0, acct.queued - len(spans))
        try:
            result = self.inner.export(spans)
        except Exception as exc:  # an exporter bug must not kill the batch thread
            log.debug("span export raised", exc_info=True)
            result = SpanExportResult.FAILURE
            why = f"exporter error: {exc}"
        else:
            why = "exporter unreachable or failing"
        if result is SpanExportResult.SUCCESS:
            with acct._lock:
                acct.exported += len(spans)
        else:
            acct.drop(len(spans), why)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class CountingBatchProcessor(BatchSpanProcessor):
    """The SDK's batch processor, whose bounded queue silently evicts when full: count it."""

    def __init__(
        self, exporter: CountingExporter, max_queue_size: int = MAX_QUEUE, **kw: float
    ) -> None:
        super().__init__(exporter, max_queue_size=max_queue_size, **kw)  # type: ignore[arg-type]
        self.accounting = exporter.accounting
        self.capacity = max_queue_size

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is not None and span.context.trace_flags.sampled:
            acct = self.accounting
            with acct._lock:
                full = acct.queued >= self.capacity
                if not full:
                    acct.queued += 1
            if full:
                acct.drop(1, "export queue full")
        super().on_end(span)


def _span_exporter(export: SignalExport) -> SpanExporter:
    if export.protocol == GRPC:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcSpanExporter,
        )

        return GrpcSpanExporter(endpoint=export.endpoint)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpSpanExporter,
    )

    return HttpSpanExporter(endpoint=export.endpoint)


def _metric_reader(export: SignalExport) -> MetricReader:
    if export.protocol == GRPC:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter as GrpcMetricExporter,
        )

        exporter = GrpcMetricExporter(endpoint=export.endpoint)
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
            OTLPMetricExporter as HttpMetricExporter,
        )

        exporter = HttpMetricExporter(endpoint=export.endpoint)  # type: ignore[assignment]
    return PeriodicExportingMetricReader(exporter)  # OTEL_METRIC_EXPORT_INTERVAL applies


@dataclass
class Providers:
    """What the core needs to emit telemetry, and to stop it within bounded time."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    registry: CollectorRegistry | None = None  # the Prometheus exporter's, for /metrics
    accounting: SpanAccounting = field(default_factory=SpanAccounting)
    exporting: tuple[str, ...] = ()  # human-readable: where traces/metrics go

    def shutdown(self, timeout: float = 3.0) -> None:
        """Flush and stop both providers; a black-holed collector costs at most `timeout`."""

        def stop() -> None:
            for name, fn in (
                ("traces", self.tracer_provider.shutdown),
                ("metrics", lambda: self.meter_provider.shutdown(int(timeout * 1000))),
            ):
                try:
                    fn()
                except Exception:
                    log.warning("%s shutdown failed", name, exc_info=True)

        worker = threading.Thread(target=stop, name="telemetry-shutdown", daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            log.warning("exporter did not finish within %.1f s; giving up", timeout)


def build_providers(settings: TelemetrySettings, resource: Resource) -> Providers:
    """Real providers: Prometheus reader always, OTLP exporters where configured."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader

    registry = CollectorRegistry(auto_describe=True)
    # target_info and scope labels would add names and labels outside clauditor_/gen_ai_.
    readers: list[MetricReader] = [
        PrometheusMetricReader(
            disable_target_info=True, scope_info_enabled=False, registry=registry
        )
    ]
    exporting: list[str] = []
    accounting = SpanAccounting()
    tracer_provider = TracerProvider(resource=resource)
    try:
        if settings.traces is not None:
            exporter = CountingExporter(_span_exporter(settings.traces), accounting)
            tracer_provider.add_span_processor(CountingBatchProcessor(exporter))
            where = settings.traces.endpoint or "(OTEL_ variables)"
            exporting.append(f"traces -> OTLP/{settings.traces.protocol} {where}")
        if settings.metrics is not None:
            readers.append(_metric_reader(settings.metrics))
            where = settings.metrics.endpoint or "(OTEL_ variables)"
            exporting.append(f"metrics -> OTLP/{settings.metrics.protocol} {where}")
    except ImportError as exc:
        # Telemetry never stops the core: without a usable exporter, we run without export.
        log.error("OTLP export disabled: %s. %s", exc, PROTO_CLASH_HINT)
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    return Providers(tracer_provider, meter_provider, registry, accounting, tuple(exporting))
