"""What the status line exchanges with the core: Claude Code's own numbers as the core
keeps them (`client_view`), where they part from the wire's (`client_drift`), and the
one line `clauditor statusline` prints, as numbers (sessions.client_view)."""

from __future__ import annotations

from clauditor.api.schemas.base import Iso, Money, Ms, Schema


class ClientNumbersOut(Schema):
    """Claude Code's accounting from its status-line payload (claude_code.statusline_numbers);
    null where the payload lacked it. Percentages 0-100."""

    cost_usd: float | None
    duration_ms: Ms
    api_duration_ms: Ms
    context_tokens: int | None
    context_window_tokens: int | None
    context_used_pct: float | None
    rate_limit_5h_pct: float | None
    rate_limit_5h_resets_at: Iso
    rate_limit_7d_pct: float | None
    rate_limit_7d_resets_at: Iso
    cache_warm: bool | None
    cache_ttl_seconds: int | None
    cache_expires_at: Iso
    cache_hit_ratio: float | None
    cache_requests: int | None
    cache_misses: int | None
    model: str | None
    version: str | None
    received_at: str


class DriftOut(Schema):
    """One number on which Claude Code and the wire disagree by more than 1 %."""

    client: float | str  # Claude Code's (a timestamp as ISO)
    wire: float | str  # clauditor's
    diff_pct: float | None  # null: Claude Code says 0 and the wire does not


class StatuslineOut(Schema):
    session_id: str
    state: str | None
    model: str | None
    served_model: str | None  # the model that answered, when it was not the one asked for
    ttft_ms: Ms  # the newest main request's
    cache_ttl_seconds: int | None
    cache_left_seconds: float | None
    context_fill: float | None
    cost_usd: Money
    unpriced_requests: int
    needs_you_others: int  # other live sessions waiting on the user
    client_drift: list[str]  # the names of the numbers that drift


class StatuslineMissingOut(Schema):
    """404 of the status line: the core has not seen the session (yet)."""

    error: str  # not_found
    detail: str
    needs_you_others: int


class ClientViewAnswerOut(Schema):
    client_view: ClientNumbersOut
    client_drift: dict[str, DriftOut] | None  # null until nothing is in flight to compare
    statusline: StatuslineOut
