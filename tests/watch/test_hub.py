"""WatchHub: tracker callbacks → events, snapshots for late joiners, bounded queues."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from clauditor.broadcast.hub import EVENT_TYPES, HubFull, Subscription, WatchHub
from clauditor.broadcast.names import display_name
from clauditor.clock import ManualClock
from clauditor.sessions.tracker import SessionTracker
from clauditor.watch.client import parse_sse
from tests.helpers import fixture_posts
from tests.sessions.replay import Replayer, answered_with

SID = "04d0a982-8c0f-4567-aba3-6d8e967e76cc"  # the b_tool_bash fixture's session


class FakeMono:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Quota:
    def __init__(self) -> None:
        self.quota: dict[str, Any] | None = None
        self.tokens = 0

    def quota_view(self) -> dict[str, Any] | None:
        return self.quota

    def weekly_view(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "budget": None, "used_fraction": None}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def mono() -> FakeMono:
    return FakeMono()


@pytest.fixture
def quota() -> Quota:
    return Quota()


@pytest.fixture
def tracker(clock: ManualClock) -> SessionTracker:
    return SessionTracker(clock, idle_timeout=300, end_timeout=1800)


@pytest.fixture
def hub(clock: ManualClock, tracker: SessionTracker, mono: FakeMono, quota: Quota) -> WatchHub:
    hub = WatchHub(
        clock,
        sessions=lambda: tracker.sessions,
        quota=quota,
        replay_seconds=5.0,
        queue_size=50,
        monotonic=mono,
        version="test",
    )
    tracker.listeners.append(hub)
    return hub


def payloads(sub: Subscription) -> list[dict[str, Any]]:
    """Decode what the subscriber would receive on the wire."""
    out = []
    for event in sub.take():
        frame = event.wire()
        assert frame.startswith(b"data: ") and frame.endswith(b"\n\n")
        assert b"\n" not in frame[:-2], "one data: line per event"
        out.extend(parse_sse(frame.decode().split("\n")))
    return out


def tool_round_trip(tracker: SessionTracker, clock: ManualClock) -> None:
    replay = Replayer(tracker, clock)
    first, second = fixture_posts("b_tool_bash")
    replay.exchange(first, duration=2.0)
    clock.advance(0.25)
    replay.exchange(second, duration=1.0)


def test_tool_round_trip_events_in_order(
    hub: WatchHub, tracker: SessionTracker, clock: ManualClock
) -> None:
    sub = hub.subscribe()
    tool_round_trip(tracker, clock)
    events = payloads(sub)
    assert events[0]["type"] == "hello" and events[0]["live"] == []
    mine = [e for e in events if e["session_id"] == SID]
    assert [e["type"] for e in mine] == [
        "session_start",
        "turn_start",
        "request_start",
        "state_changed",  # working
        "tool_use",
        "request_end",
        "cache_event",
        "context_status",
        "state_changed",  # tool: Bash runs
        "tool_result",
        "request_start",
        "state_changed",  # working
        "request_end",
        "cache_event",
        "context_status",
        "turn_end",
        "state_changed",  # your_turn
    ]
    states = [(e["state"], e["tool"]) for e in mine if e["type"] == "state_changed"]
    assert states == [("working", None), ("tool", "Bash"), ("working", None), ("your_turn", None)]
    for e in events:
        assert e["type"] in EVENT_TYPES
        assert e["ts"].endswith("Z") and "T" in e["ts"]
        assert "session_id" in e
    start = mine[0]
    assert start["model"] == "claude-opus-4-8"
    assert start["prompt"] == "Run the shell command: echo hi"
    assert start["name"] == "Run the shell command: echo"
    assert start["synthetic"] is False
    tool = next(e for e in mine if e["type"] == "tool_use")
    assert (tool["tool"], tool["summary"], tool["pending_tools"]) == ("Bash", "echo hi", 1)
    result = next(e for e in mine if e["type"] == "tool_result")
    assert (result["outcome"], result["duration_ms"], result["pending_tools"]) == ("ok", 250.0, 0)
    end = next(e for e in reversed(mine) if e["type"] == "turn_end")
    assert (end["turn"], end["outcome"], end["stop_reason"]) == (1, "completed", "end_turn")
    assert end["duration_ms"] == 3250.0
    assert end["usage"]["output_tokens"] == 18 + 19
    # 2 s and 1 s exchanges with the first token halfway, and the 0.25 s tool.
    assert end["time"] == {
        "waiting_for_model_ms": 1500.0,
        "generating_ms": 1500.0,
        "tools_ms": 250.0,
        "waiting_for_you_ms": 0.0,
        "retries_ms": 0.0,
        "subagents_ms": 0.0,
    }
    # The turn_end comes after its final request_end, so its cost includes it.
    request_costs = [e["cost_usd"] for e in mine if e["type"] == "request_end"]
    assert end["cost_usd"] == pytest.approx(sum(request_costs), abs=1e-5)
    assert end["session_cost_usd"] == pytest.approx(end["cost_usd"], abs=1e-5)
    cache = next(e for e in mine if e["type"] == "cache_event")
    assert cache["status"] == "cold" and cache["expires_at"].endswith("Z")
    seqs = [e["seq"] for e in events[1:]]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_events_never_carry_contents(
    hub: WatchHub, tracker: SessionTracker, clock: ManualClock
) -> None:
    sub = hub.subscribe()
    first, _ = fixture_posts("b_tool_bash")
    secret = "TOP-SECRET-FILE-BODY"
    write = {"file_path": "/tmp/notes.md", "content": secret}
    block = {"type": "tool_use", "id": "toolu_w", "name": "Write", "input": write}
    Replayer(tracker, clock).exchange(answered_with(first, content=[block]))
    wire = b"".join(e.wire() for e in sub.take()).decode()
    assert "/tmp/notes.md" in wire
    assert secret not in wire
    assert "sk-ant" not in wire and "x-api-key" not in wire


def test_late_subscriber_gets_a_synthetic_session_start(
    hub: WatchHub, tracker: SessionTracker, clock: ManualClock, mono: FakeMono
) -> None:
    first, second = fixture_posts("b_tool_bash")
    replay = Replayer(tracker, clock)
    replay.exchange(first, duration=2.0)
    mono.t += 10  # the first exchange falls out of the replay window
    clock.advance(0.25)
    replay.exchange(second, duration=1.0)

    sub = hub.subscribe(SID)
    events = payloads(sub)
    assert [e["type"] for e in events[:2]] == ["hello", "session_start"]
    start = events[1]
    assert start["synthetic"] is True
    assert start["prompt"] == "Run the shell command: echo hi"
    assert (start["turn"], start["tool_calls"], start["last_tool"]) == (1, 1, "Bash")
    assert start["model"] == "claude-opus-4-8"
    assert start["cost_usd"] is not None and start["cache_expires_at"] is not None
    replayed = events[2:]
    assert replayed and all(e["replay"] is True for e in replayed)
    # Only the last seconds: the second exchange, not the first (nor its session_start).
    assert next(e["type"] for e in replayed) == "tool_result"
    assert [e["type"] for e in replayed[-2:]] == ["turn_end", "state_changed"]
    assert replayed[-1]["state"] == start["state"] == "your_turn"


def test_unknown_session_subscriber_waits_for_it(hub: WatchHub) -> None:
    sub = hub.subscribe("not-yet")
    events = payloads(sub)
    assert [e["type"] for e in events] == ["hello"]
    assert events[0]["for_session"] == "not-yet"


def test_session_filter_keeps_global_events(
    hub: WatchHub, tracker: SessionTracker, clock: ManualClock, quota: Quota
) -> None:
    other = hub.subscribe("someone-else")
    everyone = hub.subscribe()
    quota.quota = {"status": "allowed", "windows": {"5h": {"utilization": 0.5}}}
    tool_round_trip(tracker, clock)
    got = payloads(other)
    assert [e["type"] for e in got] == ["hello", "quota_status"]
    assert got[1]["windows"] == {"5h": {"utilization": 0.5}}
    assert len(payloads(everyone)) > 10


def test_quota_status_only_when_it_changes(
    hub: WatchHub, tracker: SessionTracker, clock: ManualClock, quota: Quota
) -> None:
    sub = hub.subscribe()
    quota.quota = {"status": "allowed", "windows": {"5h": {"utilization": 0.1}}}
    tool_round_trip(tracker, clock)  # two responses, same quota
    assert [e["type"] for e in payloads(sub)].count("quota_status") == 1
    quota.quota = {"status": "allowed_warning", "windows": {"5h": {"utilization": 0.9}}}
    tool_round_trip(tracker, clock)
    kinds = [e for e in payloads(sub) if e["type"] == "quota_status"]
    assert len(kinds) == 1 and kinds[0]["status"] == "allowed_warning"
    assert kinds[0]["session_id"] is None
    # A new subscriber gets the current quota in its snapshot.
    assert [e["type"] for e in payloads(hub.subscribe("x"))] == ["hello", "quota_status"]


def test_slow_subscriber_loses_only_its_own_events(hub: WatchHub) -> None:
    slow = hub.subscribe()
    fast = hub.subscribe()
    payloads(slow), payloads(fast)  # the snapshots
    for i in range(200):
        hub.publish("tool_use", "s", None, {"n": i})
        if i % 10 == 9:
            assert len(payloads(fast)) == 10  # keeps up: nothing lost
    got = payloads(slow)
    assert [e["n"] for e in got[:-1]] == list(range(50))  # the queue bound
    assert got[-1]["type"] == "lagged" and got[-1]["missed"] == 150
    assert slow.missed_total == 150 and fast.missed_total == 0
    hub.publish("tool_use", "s", None, {"n": 200})
    assert [e["n"] for e in payloads(slow)] == [200]  # and then it is live again


def test_idle_end_and_no_second_announcement(
    hub: WatchHub, tracker: SessionTracker, clock: ManualClock
) -> None:
    sub = hub.subscribe()
    first, _ = fixture_posts("b_tool_bash")
    Replayer(tracker, clock).exchange(first)  # the tool_result never comes
    payloads(sub)
    clock.advance(301)
    tracker.tick()
    clock.advance(1800)
    tracker.tick()
    kinds = [e["type"] for e in payloads(sub)]
    assert kinds == [
        "tool_result",
        "turn_end",
        "state_changed",  # idle
        "session_idle",
        "state_changed",  # ended, before its session_end
        "session_end",
    ]
    assert hub.subscribe(SID).take()[-1].type == "session_end"  # still in the replay ring


def test_resumed_session_is_announced_again(
    hub: WatchHub, tracker: SessionTracker, clock: ManualClock
) -> None:
    first, second = fixture_posts("b_tool_bash")
    Replayer(tracker, clock).exchange(first)
    session = tracker.sessions[SID]
    tracker.shutdown()  # a core restart: everything ends
    tracker.sessions.clear()
    tracker.loader = lambda sid: copy.deepcopy(session) if sid == SID else None
    sub = hub.subscribe()
    Replayer(tracker, clock).exchange(second)
    kinds = [e["type"] for e in payloads(sub) if not e.get("replay")]
    assert kinds[1:3] == ["session_start", "session_active"]


def test_subscriber_cap(hub: WatchHub) -> None:
    hub.max_subscribers = 2
    a = hub.subscribe()
    hub.subscribe()
    with pytest.raises(HubFull):
        hub.subscribe()
    hub.unsubscribe(a)
    hub.subscribe()
    assert hub.stats()["subscribers"] == 2


def test_no_prompts_keeps_the_prompt_private(clock: ManualClock, tracker: SessionTracker) -> None:
    hub = WatchHub(clock, sessions=lambda: tracker.sessions, prompts=False)
    tracker.listeners.append(hub)
    sub = hub.subscribe()
    tool_round_trip(tracker, clock)
    start = next(e for e in payloads(sub) if e["type"] == "session_start")
    assert start["prompt"] is None and start["name"] == SID[:8]


async def test_next_batch_waits_and_times_out(hub: WatchHub) -> None:
    sub = hub.subscribe()
    sub.take()
    assert await sub.next_batch(0.01) == []
    loop = asyncio.get_running_loop()
    loop.call_later(0.02, lambda: hub.publish("turn_start", "s", None, {"turn": 1}))
    batch = await sub.next_batch(5.0)
    assert [e.type for e in batch] == ["turn_start"]


def test_display_names() -> None:
    assert display_name("fix the auth middleware in src/app.py please", "abc") == (
        "fix the auth middleware in"
    )
    assert display_name('use Bash [[fake:tool Bash {"command":"ls"}]]', "x") == "use Bash"
    assert display_name(None, "0123456789abcdef") == "01234567"
    assert display_name("   ", "0123456789") == "01234567"
    assert len(display_name("a" * 100, "x")) <= 28


def test_a_session_announced_before_its_prompt_is_named_when_it_comes(
    hub: WatchHub, tracker: SessionTracker, clock: ManualClock
) -> None:
    from clauditor.watch.state import WatchState

    sub = hub.subscribe()
    replay = Replayer(tracker, clock)

    def as_sid(record: dict[str, Any]) -> dict[str, Any]:
        record = copy.deepcopy(record)
        header = "x-claude-code-session-id"
        record["headers"] = [(k, SID if k.lower() == header else v) for k, v in record["headers"]]
        return record

    # The first request the core sees carries no prompt (a /compact of a session started
    # before the core was): announced under its short id.
    replay.exchange(as_sid(fixture_posts("e_compact")[0]))
    clock.advance(5)
    replay.exchange(as_sid(fixture_posts("a_plain_text")[0]))
    events = [e for e in payloads(sub) if e["session_id"] == SID]
    start = next(e for e in events if e["type"] == "session_start")
    assert (start["name"], start["prompt"]) == (SID[:8], None)
    (named,) = [e for e in events if e["type"] == "session_named"]
    first = tracker.sessions[SID].first_prompt
    assert first and named["prompt"] == first
    assert named["name"] == display_name(first, SID) != SID[:8]
    # A watcher that saw the short id shows the name from then on.
    state = WatchState()
    for e in events:
        state.apply(e)
    assert state.sessions[SID].name == named["name"]
