"""The API's cross-origin guard, on a bare ASGI app (the real API: test_security.py)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from clauditor.api.guard import CrossOriginGuard

OWN = "http://127.0.0.1:9091"
EVIL = "https://evil.example"


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def call(headers: list[tuple[str, str]]) -> tuple[int, bytes]:
    """One GET through the guard; its status and body."""
    raw = [(b"host", b"127.0.0.1:9091")] if not any(k == "Host" for k, _ in headers) else []
    raw += [(k.lower().encode(), v.encode()) for k, v in headers]
    scope = {"type": "http", "method": "GET", "path": "/", "headers": raw}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(CrossOriginGuard(_app)(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body


@pytest.mark.parametrize(
    "headers",
    [
        [("Origin", EVIL), ("Origin", OWN)],
        [("Origin", OWN), ("Origin", EVIL)],
        [("Origin", OWN), ("Origin", OWN)],
        [("Sec-Fetch-Site", "same-origin"), ("Sec-Fetch-Site", "cross-site")],
        [("Host", "127.0.0.1:9091"), ("Host", "evil.example")],
    ],
)
def test_a_repeated_header_is_refused(headers: list[tuple[str, str]]) -> None:
    status, body = call(headers)
    assert status == 403
    assert "more than one" in json.loads(body)["detail"]


def test_one_own_origin_passes_and_a_foreign_one_does_not() -> None:
    assert call([("Origin", OWN)])[0] == 200
    assert call([])[0] == 200
    assert call([("Origin", EVIL)])[0] == 403
