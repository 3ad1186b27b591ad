"""Turns wire exchanges into domain events: the only place bytes meet Anthropic's format."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from clauditor.claude_code import HEADER_PREFIX, SESSION_HEADER
from clauditor.domain.events import (
    UNOBSERVED_REQUEST,
    DomainEvent,
    ExchangeFinished,
    FirstToken,
    Observed,
    QuotaHeaders,
    RequestParsed,
    RequestStarted,
    ResponseStarted,
    StreamProgress,
    ToolUseSeen,
)
from clauditor.parsing.encoding import BodyDecoder
from clauditor.parsing.fold import MessageResult
from clauditor.parsing.request import ParsedRequest, parse_request
from clauditor.parsing.response import ResponseParser
from clauditor.wire.exchange import ExchangeObserver, Headers

log = logging.getLogger(__name__)

MESSAGES_PATH = "/v1/messages"
# Request headers the parser may see (and Claude Code's own x-claude-code-*: ids, not
# secrets). Everything else (x-api-key, authorization, cookies...) is dropped here, so
# no consumer can ever store or log a secret.
_KEPT_REQUEST_HEADERS = frozenset({"anthropic-beta", "user-agent", "content-encoding", "x-app"})
MAX_KEPT_HEADERS = 64
_QUOTA_PREFIXES = ("anthropic-ratelimit-", "retry-after")
MAX_REQUEST_BODY = 64 * 1024 * 1024

# A stream's StreamProgress comes at most this often: enough to see one stop sending.
PROGRESS_SECONDS = 5.0


@dataclass
class InterpreterStats:
    exchanges: int = 0
    ignored: int = 0  # HEAD preflights, other paths
    bad_requests: int = 0  # request bodies that are not a JSON object
    request_too_large: int = 0
    # Compressed bodies that inflate past the request cap or a sane ratio: skipped (the
    # cap keeps a 1 MB gzip bomb from costing the core a GiB), counted here and in
    # request_too_large.
    decompression_bombs: int = 0
    undecodable_bodies: int = 0  # content-encoding we cannot decode
    malformed_events: int = 0
    unknown_events: int = 0
    errors_by_type: dict[str, int] = field(default_factory=dict)
    # Exchanges whose side stream Envoy reset before the core read to its end (a core
    # lagging past deferred_close_timeout): none of the response seen / part of it.
    unobserved: int = 0
    partial: int = 0


def _path_of(raw_path: str) -> str:
    return raw_path.split("?", 1)[0]


class _MessagesExchange:
    def __init__(self, owner: Interpreter, exchange_id: int, opened_at: float) -> None:
        self._owner = owner
        self.id = exchange_id
        self.started_at = opened_at
        self._headers: dict[str, str] = {}
        self._authority: str | None = None
        self._decoder: BodyDecoder | None = None
        self._body = bytearray()
        self._too_large = False
        self._parsed = False
        self._response: ResponseParser | None = None
        self._status: int | None = None
        self._first_token = False
        self._progress_at = opened_at
        self._finished = False
        self.ignored = False

    # -- request -----------------------------------------------------------------
    def on_request_headers(self, headers: Headers, ts: float, end_of_stream: bool) -> None:
        self.started_at = ts
        method = path = ""
        for name, value in headers:
            if name == ":method":
                method = value
            elif name == ":path":
                path = value
            elif name == ":authority":
                self._authority = value
            elif name in _KEPT_REQUEST_HEADERS or (
                name.startswith(HEADER_PREFIX) and len(self._headers) < MAX_KEPT_HEADERS
            ):
                self._headers[name] = value
        if method != "POST" or _path_of(path) != MESSAGES_PATH:
            self.ignored = True
            self._owner.stats.ignored += 1
            return
        self._decoder = BodyDecoder(
            self._headers.get("content-encoding"), max_output_bytes=MAX_REQUEST_BODY
        )
        self._owner.emit(RequestStarted(self.id, ts, self._headers.get(SESSION_HEADER)))
        if end_of_stream:
            self._finish_request(ts)

    def on_request_body(self, chunk: bytes, ts: float, end_of_stream: bool) -> None:
        if self.ignored or self._parsed or self._decoder is None:
            return
        if not self._too_large:
            self._body += self._decoder.feed(chunk)
            if len(self._body) > MAX_REQUEST_BODY or self._decoder.too_large:
                self._too_large_body()
        if end_of_stream:
            self._finish_request(ts)

    def _too_large_body(self) -> None:
        self._too_large = True
        self._body = bytearray()
        stats = self._owner.stats
        stats.request_too_large += 1
        if self._decoder is not None and self._decoder.too_large:
            stats.decompression_bombs += 1

    def _finish_request(self, ts: float, *, seen_whole: bool = True) -> None:
        if self._parsed:
            return
        self._parsed = True
        if not seen_whole:
            # Reset before the end of the body: what we hold is a cut of the request,
            # and parsing it would only call a complete request broken.
            request = ParsedRequest(ok=False, error=UNOBSERVED_REQUEST)
            request.session_id = self._headers.get(SESSION_HEADER)
            request.session_source = "header" if request.session_id else None
            self._body = bytearray()
            self._owner.emit(RequestParsed(self.id, self.started_at, ts, request, self._authority))
            return
        decoder = self._decoder
        if decoder is not None and not self._too_large:
            self._body += decoder.flush()
            if decoder.too_large:
                self._too_large_body()
        if self._too_large:
            request = ParsedRequest(ok=False, error="too_large")
            request.session_id = self._headers.get(SESSION_HEADER)
            request.session_source = "header" if request.session_id else None
        elif decoder is not None and (decoder.failed or not decoder.supported):
            self._owner.stats.undecodable_bodies += 1
            request = ParsedRequest(ok=False, error="undecodable_encoding")
            request.session_id = self._headers.get(SESSION_HEADER)
            request.session_source = "header" if request.session_id else None
        else:
            request = parse_request(self._headers, self._body)  # no copy of a multi-MB body
        self._body = bytearray()  # the body is never kept past parsing
        if not request.ok:
            self._owner.stats.bad_requests += 1
        upstream = self._authority
        self._owner.emit(RequestParsed(self.id, self.started_at, ts, request, upstream))

    # -- response ----------------------------------------------------------------
    def on_response_headers(self, headers: Headers, ts: float, end_of_stream: bool) -> None:
        if self.ignored:
            return
        # Order guarantee for consumers: the request is complete before any response event.
        self._finish_request(ts)
        status: int | None = None
        content_type = content_encoding = request_id = None
        quota: dict[str, str] = {}
        for name, value in headers:
            if name == ":status":
                try:
                    status = int(value)
                except ValueError:
                    status = None
            elif name == "content-type":
                content_type = value
            elif name == "content-encoding":
                content_encoding = value
            elif name == "request-id":
                request_id = value
            elif name.startswith(_QUOTA_PREFIXES):
                quota[name] = value
        self._status = status
        self._progress_at = ts  # the headers are bytes too
        self._response = ResponseParser(status, content_type, content_encoding)
        self._owner.emit(ResponseStarted(self.id, ts, status, request_id, QuotaHeaders(quota)))
        if end_of_stream:
            self._finish(ts, None)

    def on_response_body(self, chunk: bytes, ts: float, end_of_stream: bool) -> None:
        if self.ignored or self._response is None or self._finished:
            return
        if chunk and ts - self._progress_at >= PROGRESS_SECONDS:
            self._progress_at = ts
            self._owner.emit(StreamProgress(self.id, ts))
        for signal in self._response.feed(chunk):
            if signal.kind == "first_content" and not self._first_token:
                self._first_token = True
                self._owner.emit(FirstToken(self.id, ts))
            elif signal.kind == "tool_use" and signal.tool_use is not None:
                self._owner.emit(ToolUseSeen(self.id, ts, signal.tool_use))
        if end_of_stream:
            self._finish(ts, None)

    def on_close(self, ts: float, error: str | None) -> None:
        if self.ignored or self._finished:
            return
        if error is not None and not (self._status is not None and self._status >= 400):
            # The side stream was reset (or failed) before the core read what Envoy had
            # sent up to its end: Envoy gives a lagging core deferred_close_timeout after
            # the exchange, then drops what the core has not read. The end of this
            # exchange happened, clauditor just did not see it: unobserved / partial,
            # never an error. (A stream the core read to its end closes cleanly: a cut
            # upstream or a client that went away is still truncated / aborted below.
            # An error status in the headers is Anthropic's answer whatever came after.)
            self._finish_request(ts, seen_whole=False)
            self._finish(ts, None, observed="none" if self._response is None else "partial")
            return
        self._finish_request(ts)
        self._finish(ts, "aborted" if self._response is None else None)

    def _finish(self, ts: float, forced_error: str | None, observed: Observed = "full") -> None:
        if self._finished:
            return
        self._finished = True
        parser = self._response
        result = parser.finish() if parser is not None else MessageResult()
        error = None if observed != "full" else forced_error or classify_error(self._status, result)
        stats = self._owner.stats
        stats.malformed_events += result.malformed_events
        stats.unknown_events += result.unknown_events
        decode_errors = parser.decode_errors if parser is not None else 0
        if decode_errors:
            stats.undecodable_bodies += 1
        if error is not None:
            stats.errors_by_type[error] = stats.errors_by_type.get(error, 0) + 1
        if observed == "none":
            stats.unobserved += 1
        elif observed == "partial":
            stats.partial += 1
        self._owner.emit(
            ExchangeFinished(self.id, ts, self._status, result, error, decode_errors, observed)
        )


def classify_error(status: int | None, result: MessageResult) -> str | None:
    """One error label per exchange, None when the response is a usable message."""
    if status is not None and status >= 400:
        return result.error_type or f"http_{status}"
    if result.error_type:
        return result.error_type
    if result.truncated:
        return "truncated"
    if not result.complete:
        return "invalid_response_body"
    return None


class Interpreter:
    """The ExchangeSink the wire feeds; publishes domain events."""

    def __init__(self, emit: Callable[[DomainEvent], None]) -> None:
        self.emit = emit
        self.stats = InterpreterStats()

    def open_exchange(self, exchange_id: int, ts: float) -> ExchangeObserver:
        self.stats.exchanges += 1
        return _MessagesExchange(self, exchange_id, ts)
