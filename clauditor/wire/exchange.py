"""What the wire hands on: one HTTP exchange as headers, body chunks and an end.

The wire knows HTTP and ext_proc only; whoever implements ExchangeSink decides what
the bytes mean.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

Headers = list[tuple[str, str]]  # lower-cased names, in arrival order


class ExchangeObserver(Protocol):
    def on_request_headers(self, headers: Headers, ts: float, end_of_stream: bool) -> None: ...
    def on_request_body(self, chunk: bytes, ts: float, end_of_stream: bool) -> None: ...
    def on_response_headers(self, headers: Headers, ts: float, end_of_stream: bool) -> None: ...
    def on_response_body(self, chunk: bytes, ts: float, end_of_stream: bool) -> None: ...
    def on_close(self, ts: float, error: str | None) -> None:
        """The side stream ended; error names why when it ended abnormally."""
        ...


class ExchangeSink(Protocol):
    def open_exchange(self, exchange_id: int, ts: float) -> ExchangeObserver: ...


@dataclass
class WireStats:
    """Counters about the side streams themselves (exported as metrics)."""

    streams_opened: int = 0
    streams_closed: int = 0
    streams_failed: int = 0
    # Refused before anything was read: no or a wrong ext_proc token (not opened).
    streams_refused: int = 0
    # Closed by the core itself once the response ended (included in streams_closed).
    streams_ended_early: int = 0
    messages: int = 0
    body_bytes: int = 0
    consumer_errors: int = 0
    active: int = 0
    errors_by_type: dict[str, int] = field(default_factory=dict)

    def count_error(self, kind: str) -> None:
        self.errors_by_type[kind] = self.errors_by_type.get(kind, 0) + 1
