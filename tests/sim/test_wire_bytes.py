"""The fake upstream's bytes on the wire, compared with what it sent when they were recorded.

The fake is the oracle the parsers are tested against, so a change to what it writes is a
change to every test downstream of it: this pins the exact response bytes (status line,
headers in order, chunk framing, SSE events, gzip streams, error bodies, cut streams) of a
set of requests, and what the synthetic Claude Code sends back after reading them, with
random ids drawn from a seeded generator and the `date` header
blanked. The recording in wire_bytes.json was made from the code before it was split into
clauditor/sim/; `CLAUDITOR_RECORD_WIRE=1 pytest tests/sim/test_wire_bytes.py` re-records it,
which is for a deliberate change of the fake's output only.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import random
import re
from pathlib import Path
from typing import Any

import pytest

from clauditor.sim import ids as ids_module
from clauditor.sim.claude import SyntheticSession
from clauditor.sim.replies import Reply, ToolCall
from clauditor.sim.server import FakeUpstream
from clauditor.sim.wire import render_reply

pytestmark = pytest.mark.timeout(20)

FIXTURE = Path(__file__).with_name("wire_bytes.json")
RECORD = os.environ.get("CLAUDITOR_RECORD_WIRE") == "1"
_DATE = re.compile(rb"\r\ndate: [^\r]*\r\n")


def _body(
    text: str,
    *,
    stream: bool = True,
    ttl: str | None = None,
    history: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> bytes:
    cache: dict[str, Any] = {"type": "ephemeral", **({"ttl": ttl} if ttl else {})}
    body: dict[str, Any] = {
        "model": "claude-opus-4-8",
        "messages": [
            *(history or []),
            {"role": "user", "content": [{"type": "text", "text": text, "cache_control": cache}]},
        ],
        "system": [{"type": "text", "text": "You are a wire test. " * 30}],
        "max_tokens": 1000,
        **(extra or {}),
    }
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":")).encode()


def _post(body: bytes, session: str) -> bytes:
    return (
        b"POST /v1/messages?beta=true HTTP/1.1\r\nHost: fake\r\n"
        b"Content-Type: application/json\r\nX-Claude-Code-Session-Id: " + session.encode() + b"\r\n"
        b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


_FIXED_ID = "toolu_01FIXEDfixedFIXEDfixed1"
_HISTORY = [
    {"role": "user", "content": [{"type": "text", "text": "first"}]},
    {"role": "assistant", "content": [{"type": "text", "text": "Hello from the fake upstream."}]},
]
_RECORD = {
    "status": 200,
    "kind": "tool_use",
    "model": "claude-sonnet-4-6",
    "stop_reason": "tool_use",
    "content": [
        {"type": "text", "text": "Looking."},
        {
            "type": "tool_use",
            "id": "toolu_01RECORDEDrecordedRECORD",
            "name": "Read",
            "input": {"file_path": "/tmp/x"},
        },
    ],
    "usage": {"input_tokens": 3, "output_tokens": 17, "cache_read_input_tokens": 900},
}

# (name, scripted replies for the session or None, raw request bytes); in order, on one fake.
CASES: list[tuple[str, list[Reply] | None, bytes]] = [
    ("default_stream", None, _post(_body("hello"), "wire-a")),
    ("cache_read_stream", None, _post(_body("again", history=_HISTORY), "wire-a")),
    (
        "tool_directive_1h",
        None,
        _post(_body('run [[fake:tool Bash {"command": "ls -la"}]]', ttl="1h"), "wire-b"),
    ),
    ("default_unary", None, _post(_body("unary please", stream=False), "wire-c")),
    (
        "thinking_tools_grouped",
        [
            Reply(
                text="Let me look.",
                thinking="Hmm, the user wants files.",
                events_per_chunk=2,
                tool_calls=[
                    ToolCall("Read", {"file_path": "/etc/hosts"}, id=_FIXED_ID),
                    ToolCall("Bash", {"command": "echo ü"}),
                ],
            )
        ],
        _post(_body("grouped"), "wire-d"),
    ),
    (
        "split_crlf",
        [
            Reply(
                text="Split across chunks, with CRLF line ends.",
                chunk_size=37,
                crlf=True,
                text_chunks=5,
            )
        ],
        _post(_body("split"), "wire-e"),
    ),
    ("gzip_stream", [Reply(text="Compressed stream.", gzip=True)], _post(_body("gz"), "wire-f")),
    (
        "gzip_unary",
        [Reply(text="Compressed unary.", gzip=True)],
        _post(_body("gz", stream=False), "wire-g"),
    ),
    ("sse_error_directive", None, _post(_body("err [[fake:sse_error 3]]"), "wire-h")),
    (
        "truncated",
        [Reply(text="This stream is cut off.", truncate_after=4)],
        _post(_body("cut"), "wire-i"),
    ),
    ("status_529_directive", None, _post(_body("busy [[fake:status 529]]"), "wire-j")),
    (
        "garbage_200",
        [Reply(garbage=b"\x00not json at all\xff")],
        _post(_body("junk", stream=False), "wire-k"),
    ),
    (
        "fallback_model_usage_headers",
        [
            Reply(
                text="Switched.",
                fallback_block=True,
                model="claude-sonnet-4-6",
                usage={
                    "output_tokens": 42,
                    "cache_creation": {"ephemeral_1h_input_tokens": 7},
                    "server_tool_use": {"web_search_requests": 1},
                },
                headers={"anthropic-ratelimit-requests-remaining": "99"},
                stop_reason="max_tokens",
            )
        ],
        _post(_body("fallback"), "wire-l"),
    ),
    ("from_record", [Reply.from_record(_RECORD)], _post(_body("replay"), "wire-m")),
    (
        "title_side_call",
        None,
        _post(
            _body("title", extra={"output_config": {"format": {"type": "json_schema"}}}), "wire-n"
        ),
    ),
    (
        "compaction",
        None,
        _post(_body("CRITICAL: Respond with TEXT ONLY. Do NOT call any tools."), "wire-o"),
    ),
    (
        "error_429_gzip",
        [Reply(status=429, gzip=True, headers={"retry-after": "3"})],
        _post(_body("limit"), "wire-p"),
    ),
    ("not_found", None, b"GET /nope HTTP/1.1\r\nHost: fake\r\nConnection: close\r\n\r\n"),
    ("bad_request_line", None, b"BROKEN\r\n\r\n"),
]


async def _exchange(fake: FakeUpstream, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(fake.host, fake.port)
    writer.write(raw)
    await writer.drain()
    got = bytearray()
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), 5):
            got += chunk
    except ConnectionResetError:
        pass  # a truncated stream is aborted
    writer.close()
    with contextlib.suppress(ConnectionResetError):
        await writer.wait_closed()
    return _DATE.sub(b"\r\ndate: -\r\n", bytes(got))


async def _capture(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setattr(ids_module, "_rng", random.Random(20261202))
    out: dict[str, Any] = {}
    async with FakeUpstream() as fake:
        for name, replies, raw in CASES:
            if replies is not None:
                session = raw.split(b"X-Claude-Code-Session-Id: ")[1].split(b"\r\n")[0]
                fake.script(session.decode(), replies)
            before = len(fake.exchanges)
            response = await _exchange(fake, raw)
            # Recorded before the connection closes; a request that did not parse has none.
            exchanges = fake.exchanges
            ex = exchanges[-1] if len(exchanges) > before else None
            out[name] = {
                "response": base64.b64encode(response).decode(),
                "events_sent": ex.events_sent if ex else None,
                "complete": ex.complete if ex else None,
            }
    rendered = [
        ("render_stream", Reply(text="Rendered.", tool_calls=[ToolCall("Bash", {}, "t")]), True),
        ("render_unary", Reply(content=_RECORD["content"], usage={"input_tokens": 5}), False),
        ("render_sse_error", Reply(text="Cut by an error.", sse_error_after=2), True),
        ("render_error", Reply(status=529), True),
    ]
    for name, reply, stream in rendered:
        status, ctype, body = render_reply(reply, "claude-opus-4-8", stream=stream, request_id="r")
        out[name] = {"status": status, "content_type": ctype, "body": body.decode("utf-8")}
    return out


async def _client_requests(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What the synthetic Claude Code sends through a session that reads every kind of
    response: its echo of streamed content (ids included) shows how it read them."""
    monkeypatch.setattr(ids_module, "_rng", random.Random(20261203))
    async with FakeUpstream() as fake:
        fake.script("wire-client", [Reply(text="Thinking first.", thinking="Plan it.", gzip=True)])
        async with SyntheticSession(fake.url, session_id="wire-client") as s:
            await s.turn("one")
            await s.turn('two [[fake:tool Agent {"prompt": "sub", "description": "d"}]]')
            await s.turn('three [[fake:tool Read {"file_path": "/x"}]] [[fake:sse_error 3]]')
            await s.turn("four [[fake:status 529 1]]")
            await s.title()
            await s.compact()
            fake.script("wire-client", [Reply(text="Split.", chunk_size=5, crlf=True)])
            await s.turn("five")
        return [
            {
                # The fake's port is a free one: Host is the one header that varies.
                "headers": [[k, "-" if k == "Host" else v] for k, v in ex.headers],
                # The body whole by its hash; its messages (the echo) readable, to diff.
                "sha256": hashlib.sha256(ex.body).hexdigest(),
                "messages": ex.json()["messages"],
            }
            for ex in sorted(fake.exchanges, key=lambda e: e.started)
        ]


async def test_the_fake_writes_the_recorded_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    got = await _capture(monkeypatch)
    got["client_requests"] = await _client_requests(monkeypatch)
    if RECORD:
        FIXTURE.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n")
    want = json.loads(FIXTURE.read_text())
    assert list(got) == list(want)
    for name in want:
        if "response" in want[name]:
            # Compare as bytes so a failure shows where the wire differs.
            assert base64.b64decode(got[name]["response"]) == base64.b64decode(
                want[name]["response"]
            ), name
        assert got[name] == want[name], name
