"""One request the fake upstream served and the response it wrote, as tests read them."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from typing import Any

from clauditor.sim.replies import Reply

__all__ = ["Exchange"]


@dataclass
class Exchange:
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    status: int = 0
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    response_bytes: bytes = b""  # body bytes as written (de-chunked, still gzipped if gzip)
    session_id: str | None = None
    request_id: str = ""
    started: float = 0.0
    ended: float = 0.0
    conn_id: int = 0  # one id per TCP connection, to check keep-alive reuse
    peer_port: int = 0
    events_sent: int = 0  # SSE events fully written
    complete: bool = False  # the response was written to its end
    stream: bool = False
    reply: Reply | None = None
    message: dict[str, Any] | None = None
    http_version: str = "HTTP/1.1"  # the unary form of the message a 200 reply sent

    def header(self, name: str) -> str | None:
        """First request header with this name, case-insensitively."""
        low = name.lower()
        return next((v for k, v in self.headers if k.lower() == low), None)

    def response_header(self, name: str) -> str | None:
        low = name.lower()
        return next((v for k, v in self.response_headers if k.lower() == low), None)

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def decoded_response(self) -> bytes:
        """response_bytes with any gzip content-encoding undone."""
        if self.response_header("content-encoding") == "gzip":
            # A truncated gzip stream still yields what was complete.
            return zlib.decompressobj(wbits=31).decompress(self.response_bytes)
        return self.response_bytes
