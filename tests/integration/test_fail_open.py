"""Fail-open: the core may die or hang; Claude Code's requests must not notice."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
import uuid

import httpx
import pytest

from clauditor.sim.replies import Reply, ToolCall
from clauditor.sim.server import FakeUpstream
from tests.helpers import body_bytes, fixture_posts, headers_of, wait_until
from tests.integration.reliability import is_dead, wait_stored
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
    wait_until(lambda: is_dead(pid), timeout=10)
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
    wait_stored(stack)  # the open turn and the pending tool are on disk
    before = stack.session(sid)
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
    # One shape before and after the restart, and the new core lists what the old one saw.
    assert (len(detail["requests"]), len(detail["tool_calls"])) == (2, 1)
    assert detail["requests"][0]["uid"] == before["requests"][0]["uid"]
    for key in ("turns", "requests", "tool_calls"):
        assert sorted(detail[key][0]) == sorted(before[key][0]), key
    assert sorted(detail["session"]) == sorted(before["session"])
    wait_stored(stack)
    stack.stop()
    with sqlite3.connect(stack.db) as db:
        calls = db.execute("select name, outcome, duration_ms from tool_calls").fetchall()
    assert len(calls) == 1 and calls[0][:2] == ("Bash", "ok") and calls[0][2] > 0


def _big_body(record: dict, mb: float, seed: int) -> bytes:
    """The recorded request with ~`mb` MB of tool output added, as long sessions carry."""
    body = json.loads(body_bytes(record))
    filler = "".join(
        f"{seed}:{i:07d} line of a file read by a tool\n" for i in range(int(mb * 25_000))
    )
    last = body["messages"][-1]
    if isinstance(last["content"], str):
        last["content"] = [{"type": "text", "text": last["content"]}]
    last["content"].append({"type": "text", "text": filler})
    return json.dumps(body).encode()


def test_starved_core_never_pauses_envoy_reading(stack: Stack, fake: FakeUpstream) -> None:
    """Envoy applies a side stream's flow control to the request it mirrors: when its
    connection to the core backs up, Envoy stops reading the client's upload and
    Anthropic's response. A core starved of CPU (here: stopped 30 ms of every 40) while
    rounds of 8 requests of 2 MB stream through must never back that connection up."""
    record = fixture_posts("a_plain_text")[0]
    pid = stack.core_pid()
    done = threading.Event()

    def starve() -> None:
        for _ in range(2000):  # bounded: 80 s at most
            if done.is_set():
                break
            os.kill(pid, signal.SIGSTOP)
            time.sleep(0.03)
            os.kill(pid, signal.SIGCONT)
            time.sleep(0.01)

    results: list[int] = []

    def one(i: int) -> None:
        sid = str(uuid.uuid4())
        fake.script(sid, [Reply(text="word " * 400, text_chunks=400, event_delay=0.001)])
        resp = httpx.post(
            stack.proxy_url + "/v1/messages?beta=true",
            headers=recorded_headers(record, session_id=sid),
            content=_big_body(record, 2.0, i),
            timeout=30,
            trust_env=False,
        )
        results.append(resp.status_code)

    starver = threading.Thread(target=starve)
    starver.start()
    try:
        for _round in range(3):
            threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
    finally:
        done.set()
        starver.join(10)
        os.kill(pid, signal.SIGCONT)
    assert results == [200] * 24
    assert stack.envoy_stat("cluster.clauditor_ext_proc.upstream_cx_tx_bytes_total") > 40e6
    # Anthropic's response is never paused for the core; the core's connection backs up
    # at most a few times when a stopped core leaves a whole round unread (at Envoy's
    # default 1 MiB buffer: 250-310 times, and the response paused 7-26 times).
    assert stack.envoy_stat("cluster.anthropic.upstream_flow_control_paused_reading_total") == 0
    assert stack.envoy_stat("cluster.clauditor_ext_proc.upstream_flow_control_backed_up_total") < 10
    assert stack.core_up()
