"""What every API object shares: the strict base (an unknown key is an error, so a field
added on one side only fails a test), the scalar aliases, and the small records several
objects hold (tokens and cost by class, quota)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

Money = float | None  # USD, 6 decimals; null: nothing that could be priced
Ms = float | None  # milliseconds; null: not known (yet)
Iso = str | None  # ISO 8601 UTC with milliseconds


class Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


class Tokens(Schema):
    """Billed tokens of a request, a turn or a session."""

    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_creation_tokens: int


class AbortedTokens(Schema):
    """Tokens of responses cut short (Esc, a dropped stream): billed, never answered."""

    aborted_input_tokens: int
    aborted_output_tokens: int
    aborted_cache_read_tokens: int
    aborted_cache_creation_tokens: int


class PerTokenClass(Schema):
    """A USD amount per billed token class (prices.COST_CLASSES): a cost, or a rate."""

    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float


class CostByClass(PerTokenClass):
    """USD per billed token class, each at its own rate."""


class TokensByClass(Schema):
    """Tokens per billed token class."""

    input: int
    output: int
    cache_write_5m: int
    cache_write_1h: int
    cache_read: int


class QuotaWindowOut(Schema):
    utilization: float | None  # 0..1, may pass 1
    reset_at: Iso
    status: str | None
    surpassed_threshold: float | None


class ApiLimitOut(Schema):
    limit: int | None
    remaining: int | None
    reset_at: Iso


class OverageOut(Schema):
    status: str | None
    utilization: float | None


class QuotaFallbackOut(Schema):
    status: str | None  # available | unavailable
    percentage: float | None


class QuotaOut(Schema):
    """The newest rate-limit headers Anthropic sent (the account's quota), as read."""

    observed_at: Iso
    status: str | None  # allowed | allowed_warning | rejected
    reset_at: Iso
    representative_claim: str | None  # five_hour, seven_day, seven_day_opus...
    windows: dict[str, QuotaWindowOut]  # "5h", "7d"...
    overage: OverageOut
    fallback: QuotaFallbackOut
    limits: dict[str, ApiLimitOut]  # requests, tokens...
    retry_after_seconds: float | None


class ErrorOut(Schema):
    """Every 4xx/5xx body clauditor writes itself (FastAPI's 422 has its own)."""

    error: str  # not_found | ambiguous | bad_request | too_large | unsupported_media_type...
    detail: str
    candidates: list[str] | None = None  # ambiguous: the ids the prefix names
