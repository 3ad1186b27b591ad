"""The fake Anthropic upstream: wire format, scripted and default replies, failure modes."""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import time
from typing import Any

import httpx
import pytest

from clauditor.parsing.fold import MessageResult, StreamFold, fold_message_json
from clauditor.parsing.sse import SSEDecoder, SSEEvent
from clauditor.sim.replies import Reply, ToolCall, parse_directives
from clauditor.sim.server import FakeUpstream

pytestmark = pytest.mark.timeout(10)

REQ_ID = re.compile(r"^req_011C[A-Za-z0-9]{20}$")
TOOLU_ID = re.compile(r"^toolu_01[A-Za-z0-9]{22}$")
MSG_ID = re.compile(r"^msg_01[A-Za-z0-9]{22}$")


def request_body(
    text: str = "hello",
    *,
    stream: bool = True,
    cache: bool = True,
    ttl: str | None = None,
    model: str = "claude-opus-4-8",
    history: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": text}
    if cache:
        block["cache_control"] = {"type": "ephemeral", **({"ttl": ttl} if ttl else {})}
    body: dict[str, Any] = {
        "model": model,
        "messages": [*(history or []), {"role": "user", "content": [block]}],
        "system": [{"type": "text", "text": "You are a test. " * 40}],
        "max_tokens": 1000,
    }
    if stream:
        body["stream"] = True
    return body


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def fold(raw: bytes) -> tuple[MessageResult, list[SSEEvent]]:
    decoder, folder = SSEDecoder(), StreamFold()
    events = decoder.feed(raw) + decoder.flush()
    for ev in events:
        folder.feed(ev)
    return folder.result, events


def first_usage(body: bytes) -> tuple[int, int]:
    """(input_tokens, cache_creation) the fake computes for a session's first request."""
    est = len(body) // 4
    write = est * 9 // 10
    return est - write, write


async def post(
    http: httpx.AsyncClient, fake: FakeUpstream, data: bytes, session: str | None = "s1"
) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if session:
        headers["X-Claude-Code-Session-Id"] = session
    return await http.post(fake.url + "/v1/messages?beta=true", content=data, headers=headers)


async def read_raw_response(
    reader: asyncio.StreamReader,
) -> tuple[int, dict[str, str], list[bytes]]:
    """Status, headers and the body as its HTTP chunks (one element when Content-Length)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
    if headers.get("transfer-encoding") == "chunked":
        chunks: list[bytes] = []
        for _ in range(10_000):
            size = int((await asyncio.wait_for(reader.readuntil(b"\r\n"), 5)).strip(), 16)
            if size == 0:
                assert await asyncio.wait_for(reader.readuntil(b"\r\n"), 5) == b"\r\n"
                return status, headers, chunks
            chunks.append(await asyncio.wait_for(reader.readexactly(size), 5))
            assert await reader.readexactly(2) == b"\r\n"
        raise AssertionError("too many chunks")
    n = int(headers.get("content-length", "0"))
    return status, headers, [await asyncio.wait_for(reader.readexactly(n), 5)]


# ---------------------------------------------------------------- streaming


async def test_stream_text_folds_to_script(fake: FakeUpstream) -> None:
    fake.script(
        "s1", [Reply(text="Hello, streaming world!", text_chunks=4, model="claude-sonnet-4-6")]
    )
    data = encode(request_body())
    async with httpx.AsyncClient(timeout=5) as http:
        resp = await post(http, fake, data)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert resp.headers["transfer-encoding"] == "chunked"
    assert REQ_ID.match(resp.headers["request-id"])
    result, events = fold(resp.content)
    assert [e.event for e in events] == [
        "message_start",
        "ping",
        "content_block_start",
        *["content_block_delta"] * 4,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert result.text == "Hello, streaming world!"
    assert result.stop_reason == "end_turn"
    assert result.model == "claude-sonnet-4-6"
    assert result.complete is True
    assert MSG_ID.match(result.message_id or "")
    fresh, write = first_usage(data)
    assert (result.usage.input_tokens, result.usage.cache_creation_input_tokens) == (fresh, write)
    assert result.usage.cache_read_input_tokens == 0
    assert result.usage.cache_creation_5m_tokens == write
    assert result.usage.cache_creation_1h_tokens == 0
    assert result.usage.output_tokens == len("Hello, streaming world!") // 4
    start = json.loads(events[0].data)["message"]
    assert start["usage"]["output_tokens"] == 1
    assert start["content"] == []
    assert start["stop_reason"] is None


async def test_stream_tool_use_input_in_pieces(fake: FakeUpstream) -> None:
    fixed = "toolu_01" + "A" * 22
    calls = [
        ToolCall("Bash", {"command": "ls -la", "description": "List files"}),
        ToolCall("Read", {"file_path": "/tmp/x.txt"}, id=fixed),
    ]
    fake.script("s1", [Reply(tool_calls=calls)])
    async with httpx.AsyncClient(timeout=5) as http:
        resp = await post(http, fake, encode(request_body()))
    result, events = fold(resp.content)
    assert [(t.name, t.input) for t in result.tool_uses] == [
        ("Bash", {"command": "ls -la", "description": "List files"}),
        ("Read", {"file_path": "/tmp/x.txt"}),
    ]
    assert TOOLU_ID.match(result.tool_uses[0].id)
    assert result.tool_uses[1].id == fixed
    assert result.stop_reason == "tool_use"
    assert result.block_types == ["tool_use", "tool_use"]
    pieces = [
        json.loads(e.data)["delta"]["partial_json"]
        for e in events
        if e.event == "content_block_delta" and json.loads(e.data)["index"] == 0
    ]
    assert len(pieces) == 4
    assert pieces[0] == ""
    assert "".join(pieces) == '{"command":"ls -la","description":"List files"}'


async def test_thinking_and_fallback_blocks(fake: FakeUpstream) -> None:
    fake.script("s1", [Reply(thinking="Let me think.", text="Answer.", fallback_block=True)])
    async with httpx.AsyncClient(timeout=5) as http:
        resp = await post(http, fake, encode(request_body()))
    result, events = fold(resp.content)
    assert result.block_types == ["fallback", "thinking", "text"]
    assert result.fallback_blocks == 1
    assert result.text == "Answer."
    deltas = [json.loads(e.data)["delta"] for e in events if e.event == "content_block_delta"]
    thinking = "".join(d["thinking"] for d in deltas if d["type"] == "thinking_delta")
    assert thinking == "Let me think."
    assert [d["type"] for d in deltas].count("signature_delta") == 1
    # The fallback marker is a start/stop pair with no deltas.
    assert (
        next(json.loads(e.data)["index"] for e in events if e.event == "content_block_delta") == 1
    )


async def test_usage_overrides_apply_to_final_usage(fake: FakeUpstream) -> None:
    overrides = {
        "output_tokens": 77,
        "cache_read_input_tokens": 5,
        "cache_creation": {"ephemeral_1h_input_tokens": 9},
    }
    fake.script("s1", [Reply(text="x", usage=overrides)])
    async with httpx.AsyncClient(timeout=5) as http:
        resp = await post(http, fake, encode(request_body()))
    result, events = fold(resp.content)
    assert json.loads(events[0].data)["message"]["usage"]["output_tokens"] == 1
    assert result.usage.output_tokens == 77
    assert result.usage.cache_read_input_tokens == 5
    assert result.usage.cache_creation_1h_tokens == 9


async def test_unary_when_not_streaming(fake: FakeUpstream) -> None:
    fake.script(
        "s1", [Reply(text="Plain JSON reply.", tool_calls=[ToolCall("Bash", {"command": "pwd"})])]
    )
    data = encode(request_body(stream=False))
    async with httpx.AsyncClient(timeout=5) as http:
        resp = await post(http, fake, data)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    assert int(resp.headers["content-length"]) == len(resp.content)
    obj = resp.json()
    assert obj["type"] == "message"
    assert obj["role"] == "assistant"
    assert obj["stop_reason"] == "tool_use"
    assert obj["content"][0] == {"type": "text", "text": "Plain JSON reply."}
    assert obj["content"][1]["input"] == {"command": "pwd"}
    result = fold_message_json(obj)
    assert result.text == "Plain JSON reply."
    assert result.usage.cache_creation_input_tokens == first_usage(data)[1]
    assert fake.exchanges[0].stream is False


# ---------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("status", "etype"),
    [
        (529, "overloaded_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (401, "authentication_error"),
    ],
)
async def test_error_status_json(fake: FakeUpstream, status: int, etype: str) -> None:
    quota = {"anthropic-ratelimit-unified-status": "rejected", "retry-after": "7"}
    fake.script("s1", [Reply(status=status, headers=quota)])
    async with httpx.AsyncClient(timeout=5) as http:
        resp = await post(http, fake, encode(request_body()))
    assert resp.status_code == status
    assert resp.headers["content-type"] == "application/json"
    assert resp.headers["anthropic-ratelimit-unified-status"] == "rejected"
    assert resp.headers["retry-after"] == "7"
    body = resp.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == etype
    assert body["request_id"] == resp.headers["request-id"]
    assert fake.exchanges[0].status == status


async def test_error_type_override(fake: FakeUpstream) -> None:
    fake.script("s1", [Reply(status=400, error_type="request_too_large")])
    async with httpx.AsyncClient(timeout=5) as http:
        resp = await post(http, fake, encode(request_body()))
    assert resp.json()["error"]["type"] == "request_too_large"


async def test_status_directive_counts_identical_requests(fake: FakeUpstream) -> None:
    data = encode(request_body("say hi [[fake:status 529 2]]"))
    async with httpx.AsyncClient(timeout=5) as http:
        statuses = [(await post(http, fake, data)).status_code for _ in range(3)]
        always = encode(request_body("fail [[fake:status 503]]"))
        assert (await post(http, fake, always)).status_code == 503
        assert (await post(http, fake, always)).status_code == 503
    assert statuses == [529, 529, 200]


async def test_sse_error_after_ends_cleanly(fake: FakeUpstream) -> None:
    fake.script("s1", [Reply(text="never finished", sse_error_after=3)])
    async with httpx.AsyncClient(timeout=5) as http:
        resp = await post(http, fake, encode(request_body()))
    result, events = fold(resp.content)
    assert [e.event for e in events] == ["message_start", "ping", "content_block_start", "error"]
    assert json.loads(events[-1].data)["error"]["type"] == "overloaded_error"
    assert result.error_type == "overloaded_error"
    assert result.complete is False
    ex = fake.exchanges[0]
    assert ex.complete is True
    assert ex.events_sent == 4


async def test_truncate_after_closes_the_connection(fake: FakeUpstream) -> None:
    fake.script("s1", [Reply(text="cut short", truncate_after=2)])
    got = bytearray()
    async with httpx.AsyncClient(timeout=5) as http:
        req = http.build_request(
            "POST",
            fake.url + "/v1/messages",
            content=encode(request_body()),
            headers={"X-Claude-Code-Session-Id": "s1"},
        )
        resp = await http.send(req, stream=True)
        with pytest.raises(httpx.RemoteProtocolError):
            async for chunk in resp.aiter_bytes():
                got += chunk
        await resp.aclose()
    result, events = fold(bytes(got))
    assert [e.event for e in events] == ["message_start", "ping"]
    assert result.truncated is True
    ex = (await fake.wait_for_async(1, 5))[0]
    assert ex.complete is False
    assert ex.events_sent == 2
    assert ex.response_bytes == bytes(got)


async def test_garbage_body_is_sent_verbatim(fake: FakeUpstream) -> None:
    junk = b"\x00\xffnot an SSE stream\n"
    fake.script("s1", [Reply(garbage=junk), Reply(garbage=junk)])
    async with httpx.AsyncClient(timeout=5) as http:
        streamed = await post(http, fake, encode(request_body()))
        unary = await post(http, fake, encode(request_body(stream=False)))
    assert streamed.content == junk
    assert unary.content == junk
    assert fold(streamed.content)[0].complete is False
    assert [e.response_bytes for e in fake.exchanges] == [junk, junk]


async def test_gzip_stream_and_unary(fake: FakeUpstream) -> None:
    fake.script(
        "s1", [Reply(text="zipped stream", gzip=True), Reply(text="zipped json", gzip=True)]
    )
    async with httpx.AsyncClient(timeout=5) as http:
        streamed = await post(http, fake, encode(request_body()))
        unary = await post(http, fake, encode(request_body(stream=False)))
    assert streamed.headers["content-encoding"] == "gzip"
    assert fold(streamed.content)[0].text == "zipped stream"
    assert unary.headers["content-encoding"] == "gzip"
    assert unary.json()["content"][0]["text"] == "zipped json"
    first, second = fake.exchanges
    assert first.response_bytes[:2] == b"\x1f\x8b"
    assert gzip.decompress(first.response_bytes) == streamed.content
    assert first.decoded_response == streamed.content
    assert gzip.decompress(second.response_bytes) == unary.content


# ---------------------------------------------------------------- HTTP


async def test_keep_alive_reuses_one_connection(fake: FakeUpstream) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        for i in range(3):
            resp = await post(http, fake, encode(request_body(f"turn {i}")))
            assert resp.status_code == 200
    exchanges = fake.exchanges
    assert len({e.conn_id for e in exchanges}) == 1
    assert len({e.peer_port for e in exchanges}) == 1
    assert [e.response_header("connection") for e in exchanges] == ["keep-alive"] * 3


async def test_raw_wire_chunked_upload_and_one_chunk_per_event(fake: FakeUpstream) -> None:
    data = encode(request_body("raw wire"))
    half = len(data) // 2
    chunked = b"%x\r\n%b\r\n%x\r\n%b\r\n0\r\n\r\n" % (
        half,
        data[:half],
        len(data) - half,
        data[half:],
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", fake.port)
    try:
        writer.write(
            b"POST /v1/messages?beta=true HTTP/1.1\r\nHost: x\r\nX-Claude-Code-Session-Id: raw\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + chunked
        )
        status, headers, chunks = await read_raw_response(reader)
        unary = encode(request_body("second", stream=False))
        writer.write(
            b"POST /v1/messages HTTP/1.1\r\nContent-Length: %d\r\n\r\n%b" % (len(unary), unary)
        )
        status2, _, body2 = await read_raw_response(reader)
    finally:
        writer.close()
    assert status == 200
    assert headers["content-type"] == "text/event-stream; charset=utf-8"
    # 9 events (start, ping, block start, 3 deltas, block stop, delta, stop): one chunk each.
    assert len(chunks) == 9
    assert all(
        c.startswith(b"event: ") and c.endswith(b"\n\n") and c.count(b"\n\n") == 1 for c in chunks
    )
    assert status2 == 200
    assert json.loads(body2[0])["type"] == "message"
    first, second = await fake.wait_for_async(2, 5)
    assert first.body == data
    assert first.session_id == "raw"
    assert first.query == "beta=true"
    assert first.headers[:2] == [("Host", "x"), ("X-Claude-Code-Session-Id", "raw")]
    assert first.response_bytes == b"".join(chunks)
    assert second.response_bytes == body2[0]
    assert first.conn_id == second.conn_id


async def test_events_per_chunk_and_mid_event_splits(fake: FakeUpstream) -> None:
    # A run of 3-byte characters longer than 2 chunks: 7-byte cuts must land inside one.
    text = "héllo wörld " + "✓" * 21
    fake.script(
        "raw", [Reply(text=text, events_per_chunk=3), Reply(text=text, chunk_size=7, crlf=True)]
    )
    data = encode(request_body())
    results: list[tuple[list[bytes], MessageResult]] = []
    reader, writer = await asyncio.open_connection("127.0.0.1", fake.port)
    try:
        for _ in range(2):
            writer.write(
                b"POST /v1/messages HTTP/1.1\r\nX-Claude-Code-Session-Id: raw\r\n"
                b"Content-Length: %d\r\n\r\n%b" % (len(data), data)
            )
            _, _, chunks = await read_raw_response(reader)
            results.append((chunks, fold(b"".join(chunks))[0]))
    finally:
        writer.close()
    (grouped, r1), (split, r2) = results
    assert len(grouped) == 3  # 9 events, 3 per chunk
    assert all(len(c) <= 7 for c in split)
    assert b"\r\n" in b"".join(split)
    # Some chunk boundary falls inside a multi-byte UTF-8 character.
    assert any(nxt[0] & 0xC0 == 0x80 for nxt in split[1:])
    assert r1.text == text
    assert r2.text == text
    assert r2.complete is True


async def test_head_and_unknown_paths_are_404(fake: FakeUpstream) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        head = await http.head(fake.url + "/")
        models = await http.get(fake.url + "/v1/models")
        count = await http.post(fake.url + "/v1/messages/count_tokens", content=b"{}")
    assert head.status_code == 404
    assert head.content == b""
    assert head.headers["content-type"] == "application/json"
    assert REQ_ID.match(head.headers["request-id"])
    assert models.status_code == 404
    assert models.json()["error"]["type"] == "not_found_error"
    assert count.status_code == 404
    assert [e.method for e in fake.exchanges] == ["HEAD", "GET", "POST"]


async def test_invalid_json_is_400(fake: FakeUpstream) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        resp = await post(http, fake, b"{not json")
    assert resp.status_code == 400
    assert resp.json()["error"]["type"] == "invalid_request_error"


async def test_event_delay_spaces_events(fake: FakeUpstream) -> None:
    fake.script("s1", [Reply(text="ab", text_chunks=2, event_delay=0.05)])
    fake.default_event_delay = 0.0
    async with httpx.AsyncClient(timeout=5) as http:
        t0 = time.monotonic()
        resp = await post(http, fake, encode(request_body()))
        elapsed = time.monotonic() - t0
    assert len(fold(resp.content)[1]) == 8
    assert 0.33 <= elapsed < 3.0  # 7 gaps of 0.05 s
    ex = fake.exchanges[0]
    assert ex.ended - ex.started >= 0.34


# ---------------------------------------------------------------- policy and bookkeeping


async def test_default_policy(fake: FakeUpstream) -> None:
    directive = (
        'look [[fake:tool Bash {"command":"echo hi"}]] and '
        '[[fake:tool Grep {"pattern":"a]]b","path":"."}]]'
    )
    results = [
        {"type": "tool_result", "tool_use_id": "toolu_01x", "content": "ok"},
        {"type": "tool_result", "tool_use_id": "toolu_01y", "content": "ok"},
    ]
    async with httpx.AsyncClient(timeout=5) as http:
        tools = fold((await post(http, fake, encode(request_body(directive)))).content)[0]
        body = request_body("ignored")
        body["messages"] = [
            {"role": "user", "content": results},
            {"role": "system", "content": "x"},
        ]
        done = fold((await post(http, fake, encode(body))).content)[0]
        plain = fold((await post(http, fake, encode(request_body("just talk")))).content)[0]
    assert [(t.name, t.input) for t in tools.tool_uses] == [
        ("Bash", {"command": "echo hi"}),
        ("Grep", {"pattern": "a]]b", "path": "."}),
    ]
    assert tools.text == "I'll run that for you."
    assert tools.stop_reason == "tool_use"
    assert done.text == "Done: 2 tool result(s) received."
    assert plain.text == "Hello from the fake upstream (request 3)."


async def test_model_and_delay_directives_reach_tool_rounds(fake: FakeUpstream) -> None:
    prompt = 'go [[fake:model claude-sonnet-4-5-20250929]] [[fake:tool Bash {"command":"x"}]]'
    history = [
        {"role": "user", "content": [{"type": "text", "text": prompt}]},
        {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
    ]
    body = request_body()
    body["messages"] = [
        *history,
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]},
    ]
    async with httpx.AsyncClient(timeout=5) as http:
        result = fold((await post(http, fake, encode(body))).content)[0]
    assert result.model == "claude-sonnet-4-5-20250929"
    assert result.text == "Done: 1 tool result(s) received."


async def test_cache_simulation(fake: FakeUpstream) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        d1 = encode(request_body("first"))
        u1 = fold((await post(http, fake, d1)).content)[0].usage
        grown = request_body("second", history=[{"role": "user", "content": "x" * 4000}])
        d2 = encode(grown)
        u2 = fold((await post(http, fake, d2)).content)[0].usage
        other_model = fold(
            (await post(http, fake, encode(request_body(model="claude-haiku-4-5")))).content
        )[0].usage
        d4 = encode(request_body(cache=False))
        uncached = fold((await post(http, fake, d4, session="s2")).content)[0].usage
        hour = fold((await post(http, fake, encode(request_body(ttl="1h")), session="s3")).content)[
            0
        ].usage
    assert (u1.input_tokens, u1.cache_creation_input_tokens) == first_usage(d1)
    assert u2.cache_read_input_tokens == u1.cache_creation_input_tokens
    growth = len(d2) // 4 - u2.cache_read_input_tokens
    assert u2.cache_creation_input_tokens == growth * 9 // 10
    assert u2.input_tokens == growth - growth * 9 // 10
    assert other_model.cache_read_input_tokens == 0
    assert (uncached.input_tokens, uncached.cache_creation_input_tokens) == (len(d4) // 4, 0)
    assert uncached.cache_read_input_tokens == 0
    assert hour.cache_creation_1h_tokens == hour.cache_creation_input_tokens
    assert hour.cache_creation_1h_tokens > 0
    assert hour.cache_creation_5m_tokens == 0


async def test_session_from_metadata_and_wildcard_script(fake: FakeUpstream) -> None:
    fake.script("meta-sess", [Reply(text="scripted for metadata")])
    fake.script("*", [Reply(text="wildcard")])
    body = request_body()
    body["metadata"] = {"user_id": json.dumps({"device_id": "d", "session_id": "meta-sess"})}
    async with httpx.AsyncClient(timeout=5) as http:
        meta = fold((await post(http, fake, encode(body), session=None)).content)[0]
        anon = fold((await post(http, fake, encode(request_body()), session=None)).content)[0]
        after = fold((await post(http, fake, encode(request_body()), session=None)).content)[0]
    assert meta.text == "scripted for metadata"
    assert anon.text == "wildcard"
    assert after.text == "Hello from the fake upstream (request 2)."
    assert [e.session_id for e in fake.exchanges] == ["meta-sess", None, None]


async def test_script_queue_order_then_default(fake: FakeUpstream) -> None:
    fake.script("q", [Reply(text="one")])
    fake.script("q", [Reply(text="two")])
    async with httpx.AsyncClient(timeout=5) as http:
        texts = [
            fold((await post(http, fake, encode(request_body()), session="q")).content)[0].text
            for _ in range(3)
        ]
    assert texts == ["one", "two", "Hello from the fake upstream (request 3)."]


def test_running_in_thread_for_sync_code() -> None:
    up = FakeUpstream(default_event_delay=0.001)
    with up.running_in_thread() as running:
        running.script("sync", [Reply(text="from a thread")])
        with httpx.Client(timeout=5) as http:
            resp = http.post(
                running.url + "/v1/messages",
                content=encode(request_body()),
                headers={"X-Claude-Code-Session-Id": "sync"},
            )
        exchanges = running.wait_for(1, 5)
        with pytest.raises(TimeoutError):
            running.wait_for(2, 0.05)
    assert fold(resp.content)[0].text == "from a thread"
    assert exchanges[0].session_id == "sync"
    assert exchanges[0].response_bytes == resp.content
    assert exchanges[0].ended >= exchanges[0].started


async def test_wait_for_refuses_to_block_the_server_loop(fake: FakeUpstream) -> None:
    with pytest.raises(RuntimeError, match="wait_for_async"):
        fake.wait_for(1, 0.01)


def test_parse_directives() -> None:
    text = (
        'a [[fake:tool Bash {"command":"echo ]] hi"}]] b [[fake:status 529 2]] '
        "[[fake:tool Read]] [[fake:tool Bad {not json}]] [[fake:delay 0.5]]"
    )
    assert parse_directives(text) == [
        ("tool", "Bash", {"command": "echo ]] hi"}),
        ("status", "529 2", None),
        ("tool", "Read", {}),
        ("delay", "0.5", None),
    ]
    assert parse_directives("no directives [[fake:") == []


# ---------------------------------------------------------------- Claude Code scenarios


async def test_overload_directive_529s_one_model_only(fake: FakeUpstream) -> None:
    """`--fallback-model`: every request on the overloaded model fails, the other succeeds."""
    prompt = "busy [[fake:overload claude-opus]]"
    async with httpx.AsyncClient(timeout=5) as http:
        opus = [
            (await post(http, fake, encode(request_body(prompt, model="claude-opus-5-5"))))
            for _ in range(4)
        ]
        body = request_body(prompt, model="claude-sonnet-5-5")
        sonnet = await post(http, fake, encode(body))
    assert [r.status_code for r in opus] == [529] * 4
    assert opus[0].json()["error"]["type"] == "overloaded_error"
    assert sonnet.status_code == 200
    assert fold(sonnet.content)[0].model == "claude-sonnet-5-5"


async def test_compaction_summary_with_and_without_tags(fake: FakeUpstream) -> None:
    """2.1.332 sends the instruction as its own user message (a string) and asks again
    when the reply has no <summary> tags; `/compact [[fake:compact untagged]]` provokes it."""
    history = [
        {"role": "user", "content": [{"type": "text", "text": "hello"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "hi"}]},
    ]
    instruction = "CRITICAL: Respond with TEXT ONLY. Do NOT call any tools.\n\nSummarise."
    tagged, untagged = request_body(history=history), request_body(history=history)
    tagged["messages"].append({"role": "user", "content": instruction})
    untagged["messages"].append(
        {"role": "user", "content": instruction + "\nAdditional Instructions:\n"
         "[[fake:compact untagged]]"}
    )  # fmt: skip
    async with httpx.AsyncClient(timeout=5) as http:
        with_tags = fold((await post(http, fake, encode(tagged))).content)[0]
        without = fold((await post(http, fake, encode(untagged))).content)[0]
    assert "<summary>" in with_tags.text and "</summary>" in with_tags.text
    assert without.text and "<summary>" not in without.text


RECORDED = {
    "status": 200,
    "kind": "tool_use",
    "stream": True,
    "model": "claude-opus-5-5",
    "stop_reason": "tool_use",
    "content": [
        {"type": "text", "text": "Loading it."},
        {
            "type": "tool_use",
            "id": "toolu_010TerkraX4Snq9dAB84QM4d",
            "name": "ToolSearch",
            "input": {"query": "select:WebFetch"},
        },
    ],
    "usage": {
        "input_tokens": 35,
        "cache_creation_input_tokens": 12264,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 12264, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 11,
        "service_tier": "standard",
    },
}


@pytest.mark.parametrize("stream", [True, False])
async def test_reply_from_record_sends_the_recorded_message(
    fake: FakeUpstream, stream: bool
) -> None:
    fake.script("s1", [Reply.from_record(RECORDED)])
    async with httpx.AsyncClient(timeout=5) as http:
        resp = await post(http, fake, encode(request_body("anything", stream=stream)))
    result = fold(resp.content)[0] if stream else fold_message_json(resp.json())
    assert result.model == "claude-opus-5-5"
    assert result.stop_reason == "tool_use"
    assert [(t.id, t.name, t.input) for t in result.tool_uses] == [
        ("toolu_010TerkraX4Snq9dAB84QM4d", "ToolSearch", {"query": "select:WebFetch"})
    ]
    assert result.text == "Loading it."
    u = result.usage
    assert (u.input_tokens, u.cache_creation_input_tokens, u.cache_read_input_tokens) == (
        35,
        12264,
        0,
    )
    assert u.output_tokens == 11
    (ex,) = fake.exchanges
    assert ex.message is not None and ex.message["content"] == RECORDED["content"]
    assert ex.message["usage"] == RECORDED["usage"]


async def test_reply_from_record_sse_error_and_error_status(fake: FakeUpstream) -> None:
    sse_error = {**RECORDED, "kind": "sse_error", "sse_error_after_events": 2}
    fake.script("s1", [Reply.from_record(sse_error), Reply.from_record(
        {"status": 529, "kind": "error", "error_type": "overloaded_error"}
    )])  # fmt: skip
    async with httpx.AsyncClient(timeout=5) as http:
        broken = await post(http, fake, encode(request_body()))
        overloaded = await post(http, fake, encode(request_body()))
    result, events = fold(broken.content)
    assert [e.event for e in events] == ["message_start", "ping", "error"]
    assert result.error_type == "overloaded_error"
    # message_start reported the recorded usage as it is, output tokens included.
    assert result.usage.cache_creation_input_tokens == 12264
    assert (result.usage.input_tokens, result.usage.output_tokens) == (35, 11)
    assert overloaded.status_code == 529


@pytest.mark.parametrize("kind", ["tool_use", "sse_error"])
def test_render_reply_matches_the_wire(kind: str) -> None:
    from clauditor.sim.wire import render_reply

    recorded = {**RECORDED, "kind": kind, "sse_error_after_events": 2}
    status, ctype, body = render_reply(Reply.from_record(recorded), "x", stream=True)
    assert (status, ctype) == (200, "text/event-stream; charset=utf-8")
    result, _ = fold(body)
    assert result.usage.cache_creation_input_tokens == 12264
    if kind == "sse_error":
        assert result.error_type == "overloaded_error" and not result.tool_uses
    else:
        assert result.complete and result.tool_uses[0].id == "toolu_010TerkraX4Snq9dAB84QM4d"
    status, ctype, body = render_reply(Reply(status=529), "x", stream=True)
    assert (status, ctype) == (529, "application/json")
    assert json.loads(body)["error"]["type"] == "overloaded_error"
