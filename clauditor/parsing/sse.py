"""Incremental Server-Sent Events decoder (WHATWG rules), bytes in, events out.

Works on bytes so chunk boundaries may fall anywhere (inside a UTF-8 character or a
CRLF pair); text is decoded once per dispatched event, not per byte.
"""

from __future__ import annotations

from dataclasses import dataclass

_BOM = b"\xef\xbb\xbf"
# Reuse one str object for the event names we see thousands of times per stream.
_KNOWN_NAMES: dict[bytes, str] = {
    n.encode(): n
    for n in (
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "ping",
        "error",
        "message",
    )
}


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str  # value of the last `event:` line, "message" when absent
    data: str  # data lines joined with "\n"


def _decode(raw: bytes) -> tuple[str, bool]:
    """Text of raw, and whether it had to be repaired (invalid UTF-8)."""
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace"), True


class SSEDecoder:
    """Feed bytes in any chunking; get complete events back.

    Counters: `events` dispatched, `malformed` = events that needed UTF-8 repair
    plus events dropped for exceeding `max_event_bytes`.
    """

    def __init__(self, max_event_bytes: int = 8 * 1024 * 1024) -> None:
        self.max_event_bytes = max_event_bytes
        self.events = 0
        self.malformed = 0
        self._partial: list[bytes] = []  # bytes of the current, unterminated line
        self._partial_len = 0
        self._skip_lf = False  # last chunk ended in CR: a leading LF is its pair
        self._started = False  # BOM is only stripped at the very start
        self._data: list[bytes] = []
        self._data_len = 0
        self._event: bytes = b""
        self._dropping = False  # current event went over the cap: discard to its end
        self._discard_line = False  # the next terminated line is the tail of a dropped one

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if not chunk:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
                if not chunk:
                    return []
        if chunk.find(b"\n") < 0 and chunk.find(b"\r") < 0:
            self._append_partial(chunk)
            return []
        if self._partial:
            data = b"".join(self._partial) + chunk
            self._partial = []
            self._partial_len = 0
        else:
            data = chunk
        if data.find(b"\r") >= 0:
            # A trailing CR may be the first half of a CRLF split across chunks.
            self._skip_lf = data.endswith(b"\r")
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = data.split(b"\n")
        rest = lines.pop()
        out: list[SSEEvent] = []
        for line in lines:
            self._line(line, out)
        if rest:
            self._append_partial(rest)
        return out

    def flush(self) -> list[SSEEvent]:
        """End of stream: dispatch a last event that lacked its blank line."""
        out: list[SSEEvent] = []
        if self._partial and not self._discard_line:
            line = b"".join(self._partial)
            self._line(line, out)
        self._partial = []
        self._partial_len = 0
        self._discard_line = False
        self._skip_lf = False
        self._dispatch(out)
        return out

    def _append_partial(self, piece: bytes) -> None:
        if self._discard_line:
            return
        self._partial.append(piece)
        self._partial_len += len(piece)
        if self._partial_len + self._data_len > self.max_event_bytes:
            # One endless line: drop it and the event it belongs to.
            self._partial = []
            self._partial_len = 0
            self._discard_line = True
            self._drop_event()

    def _drop_event(self) -> None:
        if not self._dropping:
            self._dropping = True
            self.malformed += 1
        self._data = []
        self._data_len = 0

    def _line(self, line: bytes, out: list[SSEEvent]) -> None:
        if not self._started:
            self._started = True
            if line.startswith(_BOM):
                line = line[3:]
        if self._discard_line:
            self._discard_line = False
            return
        if not line:
            self._dispatch(out)
            return
        if self._dropping or line[0] == 0x3A:  # ":" starts a comment
            return
        colon = line.find(b":")
        if colon < 0:
            name, value = line, b""
        else:
            name, value = line[:colon], line[colon + 1 :]
            if value[:1] == b" ":
                value = value[1:]
        if name == b"data":
            self._data.append(value)
            self._data_len += len(value) + 1
            if self._data_len > self.max_event_bytes:
                self._drop_event()
        elif name == b"event":
            self._event = value
        # `id`, `retry` and unknown fields carry nothing we use.

    def _dispatch(self, out: list[SSEEvent]) -> None:
        data_lines = self._data
        event = self._event
        dropped = self._dropping
        self._data = []
        self._data_len = 0
        self._event = b""
        self._dropping = False
        if dropped or not data_lines:
            return
        raw = data_lines[0] if len(data_lines) == 1 else b"\n".join(data_lines)
        data, bad = _decode(raw)
        if not event:
            name = "message"
        else:
            known = _KNOWN_NAMES.get(event)
            if known is None:
                known, bad_name = _decode(event)
                bad = bad or bad_name
            name = known
        if bad:
            self.malformed += 1
        self.events += 1
        out.append(SSEEvent(name, data))
