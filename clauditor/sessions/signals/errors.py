"""One error label per failed request, grouped the way people talk about them."""

from __future__ import annotations

# Labels kept as they are: not an HTTP status of Anthropic's (upstream_unreachable is
# Envoy's own 503 when it cannot connect: a setup problem, never Anthropic's overload).
_AS_IS = frozenset(
    {"truncated", "aborted", "invalid_response_body", "upstream_unreachable", "unobserved"}
)


def error_category(status: int | None, error_type: str | None) -> str | None:
    """http_<status> (529 overloaded, 429 rate limited...), sse_error (an `event: error`
    in a 200 stream), truncated, aborted, or the request-side label; None when ok."""
    if error_type is None:
        return None
    if error_type.startswith("request_") or error_type in _AS_IS:
        return error_type
    if status is not None and status >= 400:
        return f"http_{status}"
    if status == 200:
        return "sse_error"
    return error_type
