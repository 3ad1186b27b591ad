"""Bad input through real Envoy: recorded and counted, never fatal to the core."""

from __future__ import annotations

import gzip
import threading
import uuid
import zlib
from pathlib import Path

import httpx
import pytest

from clauditor.sim.replies import Reply
from clauditor.sim.server import FakeUpstream
from tests.helpers import body_bytes, fixture_posts, wait_until
from tests.integration.stack import Stack

pytestmark = pytest.mark.integration


def _post(stack: Stack, session_id: str, body: bytes, extra: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    record = fixture_posts("a_plain_text")[0]
    return stack.post_record(record, session_id=session_id, body=body, extra=extra)


def _request_when(stack: Stack, session_id: str, n: int) -> list[dict]:
    def done() -> list[dict] | None:
        r = stack.get(f"/api/sessions/{session_id}")
        if r.status_code != 200:
            return None
        reqs = r.json()["requests"]
        return reqs if len(reqs) == n and all(q["ended_at"] for q in reqs) else None

    # A stream cut without its end (the truncated case) is concluded when Envoy lets its
    # side stream go: deferred_close_timeout (10 s) after the cut.
    return wait_until(done, timeout=25)


def test_bad_input_is_recorded_and_counted(stack: Stack, fake: FakeUpstream) -> None:
    good = body_bytes(fixture_posts("a_plain_text")[0])
    cases: list[tuple[str, Reply | None, bytes, dict[str, str] | None, str | None]] = [
        ("non-json request", None, b"this is {not json", None, "request_not_json"),
        ("truncated stream", Reply(text="abc " * 50, truncate_after=4), good, None, "truncated"),
        ("529", Reply(status=529), good, None, "overloaded_error"),
        ("sse error", Reply(text="x", sse_error_after=3), good, None, "overloaded_error"),
        ("garbage body", Reply(garbage=b"\xff\xfe\x00garbage\n\n"), good, None, "truncated"),
        ("gzip response", Reply(text="zipped reply", gzip=True), good, None, None),
        # The fake cannot read gzip request bodies (400); clauditor can (first_prompt below).
        (
            "gzip request",
            None,
            gzip.compress(good),
            {"content-encoding": "gzip"},
            "invalid_request_error",
        ),
    ]
    ids = {}
    for name, reply, body, extra, _ in cases:
        sid = str(uuid.uuid4())
        ids[name] = sid
        if reply is not None:
            fake.script(sid, [reply])
        try:
            _post(stack, sid, body, extra)
        except httpx.RemoteProtocolError:
            assert name == "truncated stream"  # the upstream cut it; Claude Code sees the same

    for name, _, _, _, expected in cases:
        (req,) = _request_when(stack, ids[name], 1)
        assert req["error_type"] == expected, name

    gz = _request_when(stack, ids["gzip response"], 1)[0]
    assert gz["stop_reason"] == "end_turn"
    assert gz["output_tokens"] > 0
    gzreq = stack.session(ids["gzip request"])
    assert gzreq["session"]["first_prompt"] == "Say hello in five words."

    stats = stack.get("/api/stats").json()
    assert stats["interpreter"]["bad_requests"] == 1
    assert stats["interpreter"]["errors_by_type"]["truncated"] == 2
    assert stats["interpreter"]["errors_by_type"]["overloaded_error"] == 2
    assert stats["wire"]["consumer_errors"] == 0
    # ... and the core keeps serving real traffic.
    sid = str(uuid.uuid4())
    assert _post(stack, sid, good).status_code == 200
    assert _request_when(stack, sid, 1)[0]["error_type"] is None


def _gzip_bomb(inflated: int) -> bytes:
    """A gzip body of zeros that inflates to `inflated` bytes (~1/1000 of it on the wire)."""
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * (1 << 20)
    parts = [c.compress(block) for _ in range(inflated // len(block))]
    return b"".join(parts) + c.flush()


def _peak_rss_kib(pid: int) -> int:
    """The process's high-water resident set size (VmHWM): a spike shows after it passed."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for pid {pid}")


def test_gzip_bomb_request_is_capped_and_counted(stack: Stack, fake: FakeUpstream) -> None:
    """1 MB of gzip that inflates to 1 GiB, three at once: the core stops inflating at the
    request cap (or the ratio bound), counts each, and its peak memory hardly moves."""
    bomb = _gzip_bomb(1 << 30)
    assert len(bomb) < 1_100_000
    pid = stack.core_pid()
    before = _peak_rss_kib(pid)
    ids = [str(uuid.uuid4()) for _ in range(3)]
    threads = [
        threading.Thread(target=_post, args=(stack, sid, bomb, {"content-encoding": "gzip"}))
        for sid in ids
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for sid in ids:
        _request_when(stack, sid, 1)  # tracked and closed (the fake answers 400 to gzip)
    growth_mib = (_peak_rss_kib(pid) - before) / 1024
    stats = stack.get("/api/stats").json()["interpreter"]
    print(f"\ngzip bomb x3: core peak RSS +{growth_mib:.0f} MiB; interpreter {stats}")
    assert stats["decompression_bombs"] == 3
    assert growth_mib < 100
    metrics = stack.get("/metrics").text
    assert 'clauditor_interpreter_bad_input_total{clauditor_reason="decompression_bomb"} 3' in (
        metrics
    )
    # The core is still fine: a plain request right after is tracked.
    sid = str(uuid.uuid4())
    assert _post(stack, sid, body_bytes(fixture_posts("a_plain_text")[0])).status_code == 200
    assert _request_when(stack, sid, 1)[0]["error_type"] is None
