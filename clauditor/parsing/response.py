"""Response bytes in (any chunking, any supported Content-Encoding), MessageResult out."""

from __future__ import annotations

import json

from clauditor.parsing.encoding import BodyDecoder
from clauditor.parsing.fold import FoldSignal, MessageResult, StreamFold, fold_message_json
from clauditor.parsing.sse import SSEDecoder

# The plain-text bodies of the local replies Envoy sends when it cannot reach the upstream.
PROXY_CANNOT_CONNECT = (b"upstream connect error", b"no healthy upstream")
UPSTREAM_UNREACHABLE = "upstream_unreachable"


def _is_2xx(status: int | None) -> bool:
    # An unknown status is judged by the body alone, like a 200.
    return status is None or 200 <= status < 300


class ResponseParser:
    """SSE bodies fold as they arrive (signals for TTFT / tool calls); others buffer to finish."""

    def __init__(
        self,
        status: int | None,
        content_type: str | None,
        content_encoding: str | None,
        max_unary_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        self.status = status
        self.max_unary_bytes = max_unary_bytes
        self.decode_errors = 0  # body bytes we could not decode (unsupported/corrupt coding)
        self.dropped_bytes = 0  # unary bytes past max_unary_bytes
        self._decoder = BodyDecoder(content_encoding)
        self._sse = (content_type or "").strip().lower().startswith("text/event-stream")
        self._events = SSEDecoder() if self._sse else None
        self._fold = StreamFold() if self._sse else None
        self._buf: list[bytes] = []
        self._buf_len = 0
        self._result: MessageResult | None = None

    def feed(self, chunk: bytes) -> list[FoldSignal]:
        if self._result is not None or not chunk:
            return []
        dec = self._decoder
        if not dec.supported or dec.failed:
            self.decode_errors += len(chunk)
            return []
        data = dec.feed(chunk)
        if dec.failed:
            self.decode_errors += len(chunk)
        return self._take(data)

    def _take(self, data: bytes) -> list[FoldSignal]:
        if not data:
            return []
        if self._events is not None and self._fold is not None:
            fold = self._fold
            out: list[FoldSignal] = []
            for ev in self._events.feed(data):
                sig = fold.feed(ev)
                if sig is not None:
                    out.append(sig)
            return out
        room = self.max_unary_bytes - self._buf_len
        if room <= 0:
            self.dropped_bytes += len(data)
        elif len(data) > room:
            self._buf.append(data[:room])
            self._buf_len += room
            self.dropped_bytes += len(data) - room
        else:
            self._buf.append(data)
            self._buf_len += len(data)
        return []

    def finish(self) -> MessageResult:
        if self._result is not None:
            return self._result
        dec = self._decoder
        if dec.supported and not dec.failed:
            self._take(dec.flush())
        undecodable = not dec.supported or dec.failed
        if self._events is not None and self._fold is not None:
            for ev in self._events.flush():
                self._fold.feed(ev)
            r = self._fold.result
            r.malformed_events += self._events.malformed
        else:
            r = self._finish_unary()
        if r.error_type is None and not r.complete and not _is_2xx(self.status):
            r.error_type = f"http_{self.status}"
        elif undecodable and not r.complete and r.error_type in (None, "invalid_response_body"):
            r.error_type = "undecodable_encoding"  # we never saw the real body
        self._result = r
        return r

    def _finish_unary(self) -> MessageResult:
        body = b"".join(self._buf)
        self._buf = []
        if self.dropped_bytes:
            obj = None  # a cut body is not the body: do not half-parse it
        else:
            try:
                obj = json.loads(body) if body.strip() else None
            except (ValueError, RecursionError):
                obj = None
        if obj is not None:
            r = fold_message_json(obj)
            if r.error_type is None and not r.complete and _is_2xx(self.status):
                r.error_type = "invalid_response_body"
            return r
        if self._looks_like_sse(body):
            # A proxy dropped the content-type; the body is still a stream.
            events, fold = SSEDecoder(), StreamFold()
            for ev in events.feed(body) + events.flush():
                fold.feed(ev)
            r = fold.result
            r.malformed_events += events.malformed
            return r
        r = MessageResult()
        if self.status == 503 and body.lstrip().startswith(PROXY_CANNOT_CONNECT):
            # Envoy's own answer: it could not reach the upstream at all (not Anthropic's).
            r.error_type = UPSTREAM_UNREACHABLE
            return r
        if body or self.dropped_bytes:
            r.malformed_events += 1
        if _is_2xx(self.status):
            r.error_type = "invalid_response_body"
        return r

    @staticmethod
    def _looks_like_sse(body: bytes) -> bool:
        head = body[:64].lstrip()
        return head.startswith((b"event:", b"data:"))
