"""The core's own counters (`/api/stats`): what it saw, skipped, dropped and how far it
lags. The wire, interpreter, bus and alert-command sections are those stages' own stats
records, so a counter added there is documented here."""

from __future__ import annotations

from clauditor.api.schemas.base import Schema
from clauditor.broadcast.command import CommandStats
from clauditor.domain.bus import ConsumerStats
from clauditor.domain.interpreter import InterpreterStats
from clauditor.wire.exchange import WireStats


class TrackerStatsOut(Schema):
    live_sessions: int
    unattributed_requests: int
    held_requests: int
    hold_timeouts: int
    late_prompts: int
    listener_errors: int
    signal_errors: int
    implausible_usage: int
    unobserved_requests: int  # Envoy reset their side stream while the core lagged
    partial_requests: int


class PriorityStatsOut(Schema):
    idle_nice: int
    lagging_nice: int
    nice: int
    raised: int
    denied: bool
    loop_lag_ms: float


class AlertStatsOut(Schema):
    fired: int
    active: int
    command: CommandStats | None  # null: no --on-alert


class RegistryStatsOut(Schema):
    directory: str
    available: bool
    polls: int
    bad_files: int


class WatchStatsOut(Schema):
    asyncio_tasks: int | None
    subscribers: int
    subscribed_total: int
    published: int
    dropped_now: int
    queued_max: int
    replay_ring: int


class SpanStatsOut(Schema):
    exported: int
    dropped: int
    queued: int
    open: int


class StoreStatsOut(Schema):
    rows_written: int
    write_errors: int
    rows_dropped: int
    rows_dropped_by_reason: dict[str, int]  # queue_full, bad_row, writer_crash, shutdown
    rows_sanitised: int
    writer_alive: bool
    writer_restarts: int
    task_errors: int
    tasks_dropped: int
    last_error: str | None
    state: str  # ok | paused
    paused: str | None  # why writes are paused (disk full...)
    paused_seconds: float | None
    rows_pending: int
    db_recreated: int
    # Rows (requests, turns, tool_calls) a core that died mid-flight left open, marked
    # unobserved at this start.
    unobserved_at_start: dict[str, int]


class StatsOut(Schema):
    version: str
    pid: int
    wire: WireStats
    interpreter: InterpreterStats
    bus: list[ConsumerStats]
    tracker: TrackerStatsOut
    priority: PriorityStatsOut
    drift: dict[str, int]  # wire shapes Claude Code sent that no rule knows, by kind
    alerts: AlertStatsOut
    registry: RegistryStatsOut | None  # null: no Claude Code config directory
    watch: WatchStatsOut
    telemetry: SpanStatsOut
    store: StoreStatsOut
