"""clauditor's own events: what happened on one Messages API exchange, in order.

The interpreter emits them per exchange, always in this order:
RequestStarted → RequestParsed → ResponseStarted → FirstToken? → ToolUseSeen* → ExchangeFinished.
Consumers never see raw bytes or headers, only these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from clauditor.parsing.fold import MessageResult, ToolUse
from clauditor.parsing.request import ParsedRequest

Observed = Literal["full", "partial", "none"]
# ParsedRequest.error of a request whose body the core never saw whole because its side
# stream was reset: no verdict on the request, and no error of it.
UNOBSERVED_REQUEST = "unobserved"


@dataclass(frozen=True, slots=True)
class RequestStarted:
    exchange_id: int
    ts: float
    session_hint: str | None  # X-Claude-Code-Session-Id, known before the body arrives


@dataclass(frozen=True, slots=True)
class RequestParsed:
    exchange_id: int
    ts: float  # when the request began (headers), not when parsing finished
    body_done_ts: float
    request: ParsedRequest
    upstream_host: str | None


@dataclass(frozen=True, slots=True)
class QuotaHeaders:
    """Rate-limit and subscription quota headers of one response, raw strings."""

    values: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ResponseStarted:
    exchange_id: int
    ts: float
    status: int | None
    request_id: str | None
    quota: QuotaHeaders


@dataclass(frozen=True, slots=True)
class FirstToken:
    exchange_id: int
    ts: float


@dataclass(frozen=True, slots=True)
class StreamProgress:
    """Response bytes arrived (at most one per PROGRESS_SECONDS of a stream): a stream
    that stops sending shows as stalled, not as a slow answer."""

    exchange_id: int
    ts: float


@dataclass(frozen=True, slots=True)
class ToolUseSeen:
    exchange_id: int
    ts: float
    tool_use: ToolUse


@dataclass(frozen=True, slots=True)
class ExchangeFinished:
    exchange_id: int
    ts: float
    status: int | None
    result: MessageResult
    # "ok", or why not: http_<status>, the SSE/JSON error type, "truncated",
    # "aborted" (side stream ended before the response), "request_not_json"...
    error_type: str | None
    decode_errors: int = 0
    # How much of the exchange the core saw: "full", or, when Envoy reset the side stream
    # before the core had read to its end (a core lagging past deferred_close_timeout),
    # "partial" (some of the response) or "none" (none of it). Such an exchange carries
    # no error_type: what it lacks is clauditor's view, not Anthropic's answer.
    observed: Observed = "full"


DomainEvent = (
    RequestStarted
    | RequestParsed
    | ResponseStarted
    | FirstToken
    | StreamProgress
    | ToolUseSeen
    | ExchangeFinished
)
