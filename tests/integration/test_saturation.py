"""A core that lags past Envoy's hold (deferred_close_timeout): real Envoy, real core.

The core is stopped (SIGSTOP) while an exchange runs, past a 1 s hold configured for the
test, so Envoy resets that side stream before the core read it: what a core starved of
CPU by 64 busy sessions lived through (docs/reliability.md, "Honest under saturation").
The client got all of its response; the core must record the exchange as `unobserved`
or `partial`, never as a `truncated` error, and never end its turn as `interrupted`.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from clauditor.sim.replies import Reply
from clauditor.sim.server import FakeUpstream
from tests.helpers import fixture_posts, wait_until
from tests.integration.stack import Stack, start_stack

pytestmark = pytest.mark.integration

HOLD = 1.0  # seconds: deferred_close_timeout for this test
RESETS = "cluster.clauditor_ext_proc.upstream_rq_tx_reset"


@pytest.fixture
def short_hold(fake: FakeUpstream, tmp_path: Path) -> Iterator[Stack]:
    running = start_stack(fake.url, tmp_path, "--deferred-close-timeout", str(HOLD))
    try:
        yield running
    finally:
        assert running.stop() == 0, "\n".join(running.log[-30:])


def _requests_when(stack: Stack, session_id: str, n: int) -> list[dict]:
    def done() -> list[dict] | None:
        r = stack.get(f"/api/sessions/{session_id}")
        if r.status_code != 200:
            return None
        reqs = r.json()["requests"]
        return reqs if len(reqs) >= n and all(q["ended_at"] for q in reqs) else None

    return wait_until(done, timeout=20)


def test_a_side_stream_reset_while_the_core_lags_is_unobserved_not_truncated(
    short_hold: Stack, fake: FakeUpstream
) -> None:
    stack = short_hold
    first, second = fixture_posts("k2_interactive_tmux_json_title")[1:3]
    sid = str(uuid.uuid4())
    # A warm-up exchange: Envoy's HTTP/2 connection to the core is up before it stops.
    warm = str(uuid.uuid4())
    assert stack.post_record(first, session_id=warm).status_code == 200
    _requests_when(stack, warm, 1)

    # 30 chunks 50 ms apart: the core sees the request and the response begin, then
    # stops; the rest of the stream reaches the client, not the core, within the hold.
    fake.script(
        sid,
        [Reply(text="a full answer " * 60, text_chunks=30, event_delay=0.05), Reply(text="next")],
    )
    pid = stack.core_pid()
    resets = stack.envoy_stat(RESETS)
    with ThreadPoolExecutor(1) as pool:
        sent = pool.submit(stack.post_record, first, session_id=sid)
        wait_until(lambda: stack.session_when(sid, in_flight=1), timeout=10, interval=0.01)
        os.kill(pid, signal.SIGSTOP)
        try:
            response = sent.result(timeout=20)
            # Claude Code got all of it.
            assert response.status_code == 200 and "event: message_stop" in response.text
            # Envoy gives up on the side stream HOLD s after the exchange ended.
            wait_until(lambda: stack.envoy_stat(RESETS) > resets, timeout=15)
        finally:
            os.kill(pid, signal.SIGCONT)

    (req,) = _requests_when(stack, sid, 1)
    assert req["outcome"] == "partial", req  # its request and the response's start were seen
    assert req["error_type"] is None
    session = stack.session(sid)["session"]
    assert session["errors"] == 0 and session["errors_by_type"] == {}

    # The next prompt: the turn whose end was not seen is unobserved, not interrupted.
    assert stack.post_record(second, session_id=sid).status_code == 200
    reqs = _requests_when(stack, sid, 2)
    assert reqs[1]["outcome"] == "complete"
    turns = stack.session(sid)["turns"]
    assert [t["outcome"] for t in turns] == ["unobserved", "completed"], turns

    stats = stack.get("/api/stats").json()
    tracker = stats["tracker"]
    assert (tracker["unobserved_requests"], tracker["partial_requests"]) == (0, 1)
    assert stats["interpreter"]["errors_by_type"] == {}
    assert stats["wire"]["errors_by_type"].get("cancelled") == 1
    metrics = stack.get("/metrics").text
    assert "clauditor_requests_unobserved_total" in metrics
    summary = stack.get("/api/summary").json()["today"]
    assert summary["errors"] == 0
