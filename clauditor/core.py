"""The composition root: wire → interpreter → bus → tracker → store, plus the API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc
import uvicorn

from clauditor import __version__
from clauditor.api.app import create_app
from clauditor.api.deps import ApiDeps
from clauditor.api.queries import SessionQueries
from clauditor.broadcast.command import AlertCommand
from clauditor.broadcast.hub import WatchHub
from clauditor.clock import Clock, SystemClock
from clauditor.domain.bus import EventBus
from clauditor.domain.events import DomainEvent
from clauditor.domain.interpreter import Interpreter
from clauditor.envoy.config import Upstream
from clauditor.errors import ClauditorError
from clauditor.netaddr import LOOPBACK_NAMES, HostPort, port_in_use
from clauditor.priority import AdaptivePriority
from clauditor.sessions.alerts import AlertEngine
from clauditor.sessions.registry import RegistryReader
from clauditor.sessions.signals.engine import SignalEngine
from clauditor.sessions.signals.prices import PriceError, PriceTable, load_prices
from clauditor.sessions.tracker import SessionTracker
from clauditor.store.store import Store
from clauditor.telemetry import Telemetry
from clauditor.wire.auth import TOKEN_METADATA
from clauditor.wire.ext_proc import ExtProcServicer, start_grpc_server

log = logging.getLogger("clauditor.core")


class CoreError(ClauditorError):
    """The core cannot start (port in use, database unusable...)."""


@dataclass(frozen=True)
class CoreConfig:
    grpc: HostPort = field(default_factory=lambda: HostPort("127.0.0.1", 50051))
    api: HostPort = field(default_factory=lambda: HostPort("127.0.0.1", 9091))
    db: Path = Path("clauditor.db")
    idle_timeout: float = 300.0
    end_timeout: float = 1800.0
    extra_allowed_hosts: tuple[str, ...] = ()
    no_prompts: bool = False  # store neither the first prompt nor the summary
    retention_days: float = 90.0
    prices: Path | None = None  # a price file merged over the packaged table
    weekly_token_budget: int | None = None
    # Where Envoy forwards to: spans report it as server.address / server.port.
    upstream: Upstream = field(default_factory=lambda: Upstream("https", "api.anthropic.com", 443))
    otlp_endpoint: str | None = None  # --otlp-endpoint; else the OTEL_EXPORTER_OTLP_* variables
    # The core watches, it does not carry traffic: once it serves it drops to this CPU
    # niceness, so it never competes with Envoy or Claude Code for a CPU; it starts at the
    # niceness it was given, so a busy machine does not slow its start (docs/performance.md).
    nice: int = 0
    # ... and this one while it lags behind (clauditor.priority), when the OS allows it.
    lagging_nice: int = 0
    # ext_proc streams must carry this in their x-clauditor-token metadata; None: any
    # stream is accepted (an Envoy of the user's own without the token configured).
    ext_proc_token: str | None = field(default=None, repr=False)
    # Claude Code's config directory: its sessions/*.json registry (read-only), or None.
    claude_dir: Path | None = None
    on_alert: str | None = None  # a shell command given each alert as JSON on stdin

    @property
    def allowed_hosts(self) -> tuple[str, ...]:
        hosts = set(LOOPBACK_NAMES) | {"[::1]", self.api.host, *self.extra_allowed_hosts}
        return tuple(sorted(hosts))


class Core:
    def __init__(
        self, config: CoreConfig, clock: Clock | None = None, telemetry: Telemetry | None = None
    ) -> None:
        self.config = config
        self.version = __version__
        self.clock = clock or SystemClock()
        self.bus: EventBus[DomainEvent] = EventBus()
        self.interpreter = Interpreter(self.bus.publish)
        self.store = Store(
            config.db,
            clock=self.clock,
            no_prompts=config.no_prompts,
            retention_days=config.retention_days,
        )
        # Traces and metrics; built from the OTEL_ variables unless a test passes its own.
        self.telemetry = telemetry or Telemetry.from_env(
            self.version,
            self.clock,
            server=(config.upstream.host, config.upstream.port),
            otlp_endpoint=config.otlp_endpoint,
        )
        self.tracker = SessionTracker(
            self.clock,
            idle_timeout=config.idle_timeout,
            end_timeout=config.end_timeout,
            # Telemetry first: it sets the trace ids the store then writes.
            listeners=[*self.telemetry.listeners, self.store],
            spans=self.telemetry.traces,
            loader=self.store.load_session,
            signals=SignalEngine(
                self.clock,
                self._prices(config),
                weekly_token_budget=config.weekly_token_budget,
            ),
        )
        # The live /watch feed (the tracker computes signals before any listener runs).
        self.watch = WatchHub(
            self.clock,
            sessions=lambda: self.tracker.sessions,
            quota=self.tracker.signals,
            prompts=not config.no_prompts,
            version=self.version,
        )
        self.tracker.listeners.append(self.watch)
        # Alerts, once per episode, on /watch and to the --on-alert command.
        self.alerts = AlertEngine(self.clock, self.tracker)
        self.alerts.sinks.append(self.watch.alert)
        self.alerts.clear_sinks.append(self.watch.alert_cleared)
        self.alert_command = AlertCommand(config.on_alert) if config.on_alert else None
        if self.alert_command is not None:
            self.alerts.sinks.append(self.alert_command)
        self.tracker.listeners.append(self.alerts)
        # Live and stored sessions as one collection, in one shape, for the API.
        self.queries = SessionQueries(self.tracker, self.store, self.clock)
        self.telemetry.observe(self.tracker, self.stats)
        self.bus.subscribe("tracker", self.tracker.handle)
        self.servicer = ExtProcServicer(self.interpreter, self.clock, token=config.ext_proc_token)
        self.registry = RegistryReader(config.claude_dir) if config.claude_dir else None
        self.priority = AdaptivePriority(config.nice, config.lagging_nice)
        self._grpc: grpc.aio.Server | None = None
        self._tick: asyncio.Task[None] | None = None
        self.grpc_port: int | None = None

    @staticmethod
    def _prices(config: CoreConfig) -> PriceTable:
        try:
            return load_prices(config.prices)
        except PriceError as exc:
            raise CoreError(str(exc)) from None

    async def start(self) -> None:
        self.store.start()
        signals = self.tracker.signals
        signals.seed_week(self.store.tokens_since(signals.week_start()))
        for session_id in self.store.unfinished_session_ids():
            session = self.store.load_session(session_id)
            if session is not None:
                self.tracker.adopt(session)
        self.bus.start()
        try:
            self._grpc, self.grpc_port = await start_grpc_server(
                self.servicer, self.config.grpc.host, self.config.grpc.port
            )
        except (OSError, RuntimeError) as exc:
            raise CoreError(f"cannot listen for ext_proc on {self.config.grpc}: {exc}") from exc
        self._tick = asyncio.create_task(self._ticker(), name="tracker-tick")

    async def _ticker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(1.0)
            # How late the loop woke up: the core's lag, for free (a starved or backlogged
            # loop runs this late).
            self.priority.observe(max(0.0, loop.time() - before - 1.0), loop.time())
            try:
                if self.registry is not None:
                    # A directory listing and a few small reads: off the event loop.
                    entries = await asyncio.to_thread(self.registry.poll)
                    self.tracker.apply_registry(entries)
                self.tracker.tick()
                self.alerts.tick()
                self.store.writer.ensure_running()
                self.store.maybe_prune()
            except Exception:
                log.exception("tracker tick failed")

    async def stop(self) -> None:
        if self._tick is not None:
            self._tick.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tick
        if self._grpc is not None:
            await self._grpc.stop(grace=1.0)
        with contextlib.suppress(asyncio.TimeoutError):
            await self.bus.drain(timeout=2.0)
        self.tracker.shutdown()
        await self.bus.stop()
        if self.alert_command is not None:
            await self.alert_command.close()
        self.store.writer.flush(timeout=5.0)
        self.store.stop()
        # Last: the spans ended above; a dead collector costs at most a few seconds.
        self.telemetry.shutdown()

    # -- views for the API ---------------------------------------------------------
    def api_deps(self) -> ApiDeps:
        """What the HTTP API reads, and nothing else of the core."""
        return ApiDeps(
            version=self.version,
            clock=self.clock,
            allowed_hosts=self.config.allowed_hosts,
            tracker=self.tracker,
            queries=self.queries,
            history=self.store,
            alerts=self.alerts,
            watch=self.watch,
            stats=self.stats,
            metrics=self.telemetry.prometheus,
        )

    def stats(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "pid": os.getpid(),
            "wire": asdict(self.servicer.stats),
            "interpreter": asdict(self.interpreter.stats),
            "bus": [asdict(s) for s in self.bus.stats],
            "tracker": {
                "live_sessions": len(self.tracker.sessions),
                "unattributed_requests": self.tracker.unattributed_requests,
                "held_requests": self.tracker.held_requests,
                "hold_timeouts": self.tracker.hold_timeouts,
                "late_prompts": self.tracker.late_prompts,
                "listener_errors": self.tracker.listener_errors,
                "signal_errors": self.tracker.signal_errors,
                "implausible_usage": self.tracker.implausible_usage,
                # Envoy reset their side stream while the core lagged: never errors.
                "unobserved_requests": self.tracker.unobserved_requests,
                "partial_requests": self.tracker.partial_requests,
            },
            "priority": self.priority.stats(),
            "drift": self.tracker.signals.drift.view(),
            "alerts": {
                "fired": self.alerts.fired,
                "active": len(self.alerts.active),
                "command": None if self.alert_command is None else asdict(self.alert_command.stats),
            },
            "registry": None
            if self.registry is None
            else {
                "directory": str(self.registry.directory),
                "available": self.registry.available,
                "polls": self.registry.polls,
                "bad_files": self.registry.bad_files,
            },
            "watch": self.watch.stats(),
            "telemetry": self.telemetry.span_stats(),
            "store": {
                **self.store.writer.stats(),
                "unobserved_at_start": self.store.unobserved_at_start,
            },
        }


def check_ports(*addrs: HostPort) -> None:
    for addr in addrs:
        if port_in_use(addr):
            raise CoreError(f"address {addr} is already in use")


class _ApiServer(uvicorn.Server):
    """uvicorn without its own signal handling: it re-raises SIGTERM after shutdown,
    which would kill the process before the core flushes its store."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        pass


def lower_priority(nice: int) -> None:
    """Every thread of this process to niceness `nice` (Linux keeps niceness per thread;
    threads started later inherit it from the thread that starts them)."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    task_dir = Path("/proc/self/task")
    tids = [int(t.name) for t in task_dir.iterdir()] if task_dir.is_dir() else [0]
    for tid in tids:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, max(nice, os.getpriority(os.PRIO_PROCESS, tid)))
        except OSError:  # a thread that just ended
            continue


async def serve(config: CoreConfig, clock: Clock | None = None) -> None:
    """Run the core (ext_proc gRPC + HTTP API) until SIGINT/SIGTERM."""
    check_ports(config.grpc, config.api)
    core = Core(config, clock)
    await core.start()
    server = _ApiServer(
        uvicorn.Config(
            create_app(core.api_deps()),
            host=config.api.host,
            port=config.api.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    log.info("clauditor core: ext_proc on %s, API on %s", config.grpc, config.api)
    if config.ext_proc_token is None:
        log.warning(
            "ext_proc accepts streams from any local process (no --ext-proc-token): one "
            "could inject forged exchanges; set CLAUDITOR_EXT_PROC_TOKEN here and the same "
            "value in Envoy's grpc_service initial_metadata (key %s)",
            TOKEN_METADATA,
        )
    lower_priority(config.nice)
    core.priority.armed = True
    try:
        await server.serve()
    finally:
        await core.stop()
