"""What the stored history answers: period totals (`/api/summary`), the trend report
(`/api/report`), recall (`/api/recall`) and a diagnosis (`/api/diagnosis/{id}`)."""

from __future__ import annotations

from typing import Any

from clauditor.api.schemas.base import CostByClass, Iso, Money, Ms, QuotaOut, Schema, TokensByClass
from clauditor.api.schemas.sessions import SessionListItemOut, TimePartsOut


class TokensByTypeOut(Schema):
    input: int
    output: int
    cache_read: int
    cache_creation: int


class PeriodTokensOut(TokensByTypeOut):
    cache_creation_1h: int  # the part of cache_creation written with the 1-hour TTL


class PeriodOut(Schema):
    """Totals of the requests started since a UTC day, week (Monday) or month began."""

    since: str
    sessions: int
    turns: int  # typed prompts
    turns_all: int
    requests: int
    tokens: PeriodTokensOut
    cost_usd: Money
    cost_by_class: CostByClass | None
    unpriced_requests: int
    aborted_cost_usd: Money
    cost_by_day_usd: dict[str, Money]  # YYYY-MM-DD -> USD
    cache_hit_ratio: float | None
    cache_statuses: dict[str, int]
    fallbacks: int
    errors: int
    errors_by_type: dict[str, int]  # error category -> requests
    unobserved_requests: int
    retries: int
    compaction_requests: int


class QuotaShareOut(Schema):
    """A session's estimated share of a quota window."""

    session_id: str
    project: str | None
    first_prompt: str | None
    share: float  # 0..1


class WeeklyOut(Schema):
    """This UTC week's tokens against the budget given with --weekly-token-budget."""

    week_start: str
    resets_at: str
    tokens: int
    tokens_by_type: TokensByTypeOut
    budget: int | None
    remaining: int | None
    used_fraction: float | None
    exhausted: bool
    burn_rate_tokens_per_hour: float
    projected_exhaustion_at: Iso
    seconds_to_exhaustion: float | None


class SummaryOut(Schema):
    generated_at: str
    today: PeriodOut
    week: PeriodOut
    month: PeriodOut
    quota_top_sessions: dict[str, list[QuotaShareOut]]  # window -> largest shares first
    quota: QuotaOut | None
    weekly: WeeklyOut
    # Model -> the context size at which Claude Code was seen to compact (learned).
    compaction_thresholds: dict[str, int | None]


class MoneyOut(Schema):
    cost_usd: Money
    requests: int
    unpriced_requests: int


class ReportDayOut(Schema):
    date: str  # YYYY-MM-DD, UTC
    cost_usd: Money
    cost_by_model: dict[str, Money]
    tokens_by_class: TokensByClass
    sessions: int
    turns: int
    turns_all: int
    requests: int
    unpriced_requests: int


class ReportGroupOut(MoneyOut):
    key: str | None  # the day, model or project (`by`); null: no project


class ReportSessionOut(MoneyOut):
    session_id: str
    project: str | None
    model: str | None
    first_prompt: str | None


class ReportProjectOut(MoneyOut):
    project: str | None
    sessions: int


class TimeShareOut(Schema):
    waiting_for_model: float | None
    generating: float | None
    tools: float | None
    waiting_for_you: float | None
    retries: float | None
    subagents: float | None


class ReportTimeOut(TimePartsOut):
    """The window's turns' time, part by part (null: no turn has that part)."""

    total_ms: Ms
    share: TimeShareOut | None  # of total_ms; null when it is unknown or zero


class ReportOut(Schema):
    generated_at: str
    window_days: int
    since: str
    until: str
    by: str  # day | model | project
    sessions: int
    turns: int
    turns_all: int
    requests: int
    cost_usd: Money
    unpriced_requests: int
    days: list[ReportDayOut]
    groups: list[ReportGroupOut]  # by day in date order, else the costliest first
    tokens_by_class: TokensByClass
    cost_by_class: CostByClass | None
    cache_hit_ratio: float | None
    ttft_p50_ms: Ms
    ttft_p95_ms: Ms
    ttft_requests: int
    time: ReportTimeOut
    top_sessions: list[ReportSessionOut]
    top_projects: list[ReportProjectOut]


class RecallHitOut(SessionListItemOut):
    score: float  # higher: a better match


class RecallOut(Schema):
    query: str
    sessions: list[RecallHitOut]


class FindingOut(Schema):
    code: str
    severity: str  # info | warning | critical
    message: str
    evidence: dict[str, Any]  # the numbers the rule saw (per rule)
    advice: list[str]


class DiagnosisOut(Schema):
    session_id: str
    findings: list[FindingOut]  # the most severe first
