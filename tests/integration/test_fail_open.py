"""Fail-open: the core may die or hang; Claude Code's requests must not notice."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
import uuid

import httpx
import pytest

from clauditor.testing.fake_upstream import FakeUpstream, Reply, ToolCall
from tests.helpers import body_bytes, fixture_posts, headers_of, wait_until
from tests.integration.stack import Stack, recorded_headers

pytestmark = pytest.mark.integration


def _stream(stack: Stack, session_id: str, on_first_bytes=None) -> tuple[int, bytes]:  # type: ignore[no-untyped-def]
    record = fixture_posts("a_plain_text")[0]
    # metadata.user_id still names the recorded session; the header wins.
    headers, body = recorded_headers(record, session_id=session_id), body_bytes(record)
    chunks: list[bytes] = []
    with httpx.stream(
        "POST",
        stack.proxy_url + "/v1/messages?beta=true",
        headers=headers,
        content=body,
        timeout=30,
        trust_env=False,
    ) as resp:
        for chunk in resp.iter_raw():
            if not chunks and on_first_bytes is not None:
                on_first_bytes()
            chunks.append(chunk)
        return resp.status_code, b"".join(chunks)


def _slow_reply() -> Reply:
    return Reply(text="word " * 200, text_chunks=40, event_delay=0.03)


def _restarted(stack: Stack, old_pid: int) -> int:
    def new_pid() -> int | None:
        if not stack.core_up():
            return None
        pid = stack.core_pid()
        return pid if pid != old_pid else None

    return wait_until(new_pid, timeout=15, interval=0.1)


def test_sigkill_core_mid_stream_then_restart(stack: Stack, fake: FakeUpstream) -> None:
    sid = str(uuid.uuid4())
    fake.script(sid, [_slow_reply()])
    pid = stack.core_pid()
    try:
        status, received = _stream(stack, sid, on_first_bytes=lambda: os.kill(pid, signal.SIGKILL))
    except httpx.HTTPError as exc:  # keep Envoy's view of it for whoever reads the failure
        raise AssertionError("\n".join(stack.log[-40:])) from exc
    assert status == 200
    sent = fake.wait_for(1, timeout=10)[-1]  # recorded once the fake finished writing
    assert received == sent.response_bytes
    assert received.rstrip().endswith(b'{"type":"message_stop"}')

    _restarted(stack, pid)
    # New traffic is tracked again by the restarted core.
    sid2 = str(uuid.uuid4())
    status, _ = _stream(stack, sid2)
    assert status == 200
    wait_until(lambda: any(s["session_id"] == sid2 for s in stack.sessions()), timeout=10)


def test_sigkill_core_while_idle_traffic_still_flows(stack: Stack, fake: FakeUpstream) -> None:
    pid = stack.core_pid()
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.1)
    sid = str(uuid.uuid4())
    status, received = _stream(stack, sid)  # the core is down right now
    assert status == 200
    assert received == fake.wait_for(1, timeout=10)[-1].response_bytes
    _restarted(stack, pid)
    assert stack.get("/health").text == "ok"


def test_sigstopped_core_does_not_hold_requests(stack: Stack, fake: FakeUpstream) -> None:
    pid = stack.core_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        results: list[tuple[int, bytes, float]] = []

        def one() -> None:
            sid = str(uuid.uuid4())
            t0 = time.monotonic()
            status, body = _stream(stack, sid)
            results.append((status, body, time.monotonic() - t0))

        threads = [threading.Thread(target=one) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(results) == 4
        assert all(status == 200 for status, _, _ in results)
        sent = {e.response_bytes for e in fake.exchanges}
        assert all(body in sent for _, body, _ in results)
        # Not a timing assertion on speed, only that nothing waited for the hung core
        # (Envoy's ext_proc message timeout would be >= 200 ms per message).
        assert max(elapsed for _, _, elapsed in results) < 10
    finally:
        os.kill(pid, signal.SIGCONT)
    assert stack.core_up()


def test_core_restart_mid_turn_resumes_the_turn(stack: Stack, fake: FakeUpstream) -> None:
    first, second = fixture_posts("b_tool_bash")
    sid = headers_of(first)["x-claude-code-session-id"]
    tool_id = first["response"]["content"][1]["id"]
    fake.script(sid, [Reply(tool_calls=[ToolCall("Bash", {"command": "echo hi"}, id=tool_id)])])

    def post(record: dict) -> int:
        return stack.post_record(record).status_code

    assert post(first) == 200
    wait_until(lambda: stack.session(sid).get("session", {}).get("in_flight") == 0, timeout=10)
    time.sleep(0.8)  # > the store's flush interval: the open turn and pending tool are on disk
    pid = stack.core_pid()
    os.kill(pid, signal.SIGKILL)
    _restarted(stack, pid)
    assert post(second) == 200  # the tool_result arrives at the new core

    def settled() -> dict | None:
        s = stack.session(sid)
        return s if s["session"]["requests"] == 2 and not s["session"]["in_flight"] else None

    detail = wait_until(settled, timeout=10)
    assert detail["session"]["turns"] == 1
    assert detail["session"]["tool_calls"] == 1
    assert [t["outcome"] for t in detail["turns"]] == ["completed"]
    time.sleep(0.8)
    stack.stop()
    with sqlite3.connect(stack.db) as db:
        calls = db.execute("select name, outcome, duration_ms from tool_calls").fetchall()
    assert len(calls) == 1 and calls[0][:2] == ("Bash", "ok") and calls[0][2] > 0
