"""The rules Claude Code 2.1.332 changed, on its captured requests (fixtures/claude-code-2.1.332).

Expected values come from Claude Code's own stream-json output of each run
(`*.stdout.jsonl`: total_cost_usd, modelUsage, compact_metadata) or are worked out by hand
from the documented prices (docs/anthropic-api.md: claude-opus-5-5 $4 / $20 / $5 / $0.20).
The fixtures' prose is filler; where a rule reads Claude Code's own words (a background
launch result, a task notification) the test puts back the text the real 2.1.332 sends,
as captured against the fake upstream.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from clauditor.clock import ManualClock
from clauditor.parsing.fold import MessageResult
from clauditor.sessions.models import Session
from clauditor.sessions.signals.engine import SignalEngine
from clauditor.sessions.tracker import SessionTracker
from tests.sessions.replay import Replayer, result_of

FIXTURES = Path(__file__).parent.parent / "fixtures" / "claude-code-2.1.332"
T0 = 1_796_000_000.0  # 2026-11-30

# What the real 2.1.332 wrote (captured against clauditor's fake upstream, trimmed).
AGENT_ID = "ae689e2e121c15067"
LAUNCHED = (
    "Async agent launched successfully. (This tool result is internal metadata — never quote "
    "or paste any part of it, including the agentId below, into a user-facing reply.)\n"
    f"agentId: {AGENT_ID} (internal ID - do not mention to user. Use SendMessage with to: "
    f"'{AGENT_ID}', summary: '<5-10 word recap>' to continue this agent.)\n"
    "The agent is working in the background. You will be notified automatically when it "
    "completes."
)


def notification(tool_use_id: str, status: str = "completed") -> str:
    return (
        "<system-reminder>\n[SYSTEM NOTIFICATION - NOT USER INPUT]\nThis is an automated "
        "background-task event, NOT a message from the user.\n\n<task-notification>\n"
        f"<task-id>{AGENT_ID}</task-id>\n<tool-use-id>{tool_use_id}</tool-use-id>\n"
        f'<status>{status}</status>\n<summary>Agent "Say hello" finished</summary>\n'
        "<result>Hello.</result>\n<usage><subagent_tokens>7152</subagent_tokens>"
        "<tool_uses>0</tool_uses><duration_ms>476</duration_ms></usage>\n"
        "</task-notification>\n</system-reminder>"
    )


def records(name: str) -> list[dict[str, Any]]:
    lines = (FIXTURES / f"{name}.jsonl").read_text().splitlines()
    out = []
    for line in lines:
        rec = json.loads(line)
        if isinstance(rec["body"], str):
            rec["body"] = json.loads(rec["body"])
        out.append(rec)
    return out


def truth(name: str) -> list[dict[str, Any]]:
    """The `result` events Claude Code printed, over every run of the capture."""
    runs = sorted(FIXTURES.glob(f"{name}.stdout.jsonl")) or sorted(
        FIXTURES.glob(f"{name}.[0-9].stdout.jsonl")
    )
    return [
        e
        for path in runs
        for e in map(json.loads, path.read_text().splitlines())
        if e.get("type") == "result"
    ]


def reply(rec: dict[str, Any]) -> MessageResult:
    """The response the fake sent, folded as the interpreter would."""
    response = rec["response"]
    result = result_of(response)
    if response.get("kind") == "sse_error":
        # message_start reported its usage, then `event: error`: no message_stop.
        result.error_type, result.complete, result.stop_reason = "overloaded_error", False, None
    return result


class Run:
    def __init__(self) -> None:
        self.clock = ManualClock(T0)
        self.engine = SignalEngine(self.clock)
        self.tracker = SessionTracker(self.clock, signals=self.engine)
        self.replayer = Replayer(self.tracker, self.clock)

    def play(self, recs: list[dict[str, Any]], gap: float = 0.5) -> None:
        for rec in recs:
            self.replayer.exchange(rec)
            self.clock.advance(gap)

    @property
    def session(self) -> Session:
        (session,) = self.tracker.sessions.values()
        return session


def test_a_toolsearch_loaded_tool_is_one_turn() -> None:
    # The second request's newest user message holds the ToolSearch tool_result and a
    # separate text block "Tool loaded.": Claude Code's words, not a prompt.
    recs = records("n_toolsearch")
    newest = recs[1]["body"]["messages"][-1]["content"]
    assert [b.get("text") for b in newest if b["type"] == "text"] == ["Tool loaded."]
    run = Run()
    run.play(recs)
    api = run.session.as_api()
    assert (api["turns"], api["turns_all"], api["requests"]) == (1, 1, 2)
    assert [(t.trigger, t.outcome, t.prompt) for t in run.session.turns] == [
        ("prompt", "completed", "Load the WebFetch tool.")
    ]
    assert api["tools"] == {"ToolSearch": 1}
    assert run.session.signals.cost_usd == pytest.approx(
        truth("n_toolsearch")[-1]["total_cost_usd"]
    )


def test_default_model_has_its_native_1m_window_without_the_beta() -> None:
    recs = records("n_plain")
    betas = dict((k.lower(), v) for k, v in recs[0]["headers"])["anthropic-beta"]
    assert "context-1m" not in betas
    run = Run()
    run.play(recs)
    api = run.session.as_api()
    model_usage = truth("n_plain")[-1]["modelUsage"]["claude-opus-5-5"]
    assert api["context_window_tokens"] == model_usage["contextWindow"] == 1_000_000
    assert api["compaction_threshold_tokens"] == 967_000  # 1M - 20k - 13k
    assert api["context_fill"] == pytest.approx((12_295 + 0 + 0) / 1_000_000)
    assert run.session.signals.cost_usd == pytest.approx(model_usage["costUSD"])


def background_run() -> tuple[Run, str]:
    """n_subagent_bg with Claude Code's own launch text and task notification put back."""
    recs = records("n_subagent_bg")
    tool_use_id = recs[0]["response"]["content"][-1]["id"]
    for rec in (recs[1], recs[3]):
        for m in rec["body"]["messages"]:
            for block in m["content"] if isinstance(m["content"], list) else []:
                if block.get("type") == "tool_result" and block["tool_use_id"] == tool_use_id:
                    block["content"] = [{"type": "text", "text": LAUNCHED}]
    recs[3]["body"]["messages"][-1]["content"] = [
        {"type": "text", "text": notification(tool_use_id)}
    ]
    # The subagent's first user message names the task last, after Claude Code's context.
    run = Run()
    run.play(recs[:2])
    run.clock.advance(2.0)  # the main turn ended; the subagent works on
    run.play(recs[2:3])
    run.clock.advance(3.0)
    run.play(recs[3:])
    return run, tool_use_id


def test_a_background_subagent_is_tied_to_its_agent_call_until_the_notification() -> None:
    run, tool_use_id = background_run()
    s = run.session
    requests = run.tracker.recent_requests(s.session_id)
    sub = [r for r in requests if r.kind == "subagent"]
    assert [(r.parent_tool_use_id, r.agent_id) for r in sub] == [(tool_use_id, AGENT_ID)]
    assert s.agents == {AGENT_ID: tool_use_id}
    # The notification is Claude Code's, not a prompt: one typed prompt, two turns.
    api = s.as_api()
    assert (api["turns"], api["turns_all"]) == (1, 2)
    assert [(t.trigger, t.prompt) for t in s.turns] == [
        ("prompt", "Use a subagent to say hello."),
        ("task_notification", None),
    ]
    # The subagent's request belongs to the turn that launched it.
    assert sub[0].turn_index == 1
    assert not s.background_agents
    assert api["background_agents"] == 0
    assert run.session.signals.cost_usd == pytest.approx(
        truth("n_subagent_bg")[-1]["total_cost_usd"]
    )


def test_background_agent_call_duration_and_roll_up() -> None:
    run, tool_use_id = background_run()
    s = run.session
    closed = run.tracker._closed_agents[s.session_id][tool_use_id]
    assert closed.background is True
    assert closed.outcome == "ok"
    assert closed.agent_id == AGENT_ID
    # From the end of the response that asked for it to the notification request: a
    # 0.5 s gap, the launch result's exchange (1 s), 0.5 s, 2 s, the subagent's exchange
    # (1 s), 0.5 s, 3 s.
    assert closed.duration_ms == pytest.approx((0.5 + 1 + 0.5 + 2 + 1 + 0.5 + 3) * 1000)
    # Its run: one request, 35 in / 11 out / 7,058 cache read at $4 / $20 / $0.20.
    assert closed.subagent_requests == 1
    assert closed.subagent_tokens.as_api() == {
        "input_tokens": 35,
        "output_tokens": 11,
        "cache_read_tokens": 7_058,
        "cache_creation_tokens": 0,
    }
    assert closed.subagent_cost_usd == pytest.approx((35 * 4 + 11 * 20 + 7_058 * 0.2) / 1e6)


def test_compaction_in_the_2_1_332_layout() -> None:
    # Run 2 is `-p /compact`: the reply had no <summary> tags, so Claude Code asked twice.
    # Run 3's one user message holds the summary, the /compact echo and the new prompt.
    run = Run()
    run.play(records("n_compact"))
    s = run.session
    api = s.as_api()
    assert api["compactions"] == 1
    assert [(t.trigger, t.prompt, t.requests) for t in s.turns] == [
        ("prompt", "Say hello in five words.", 1),
        ("compaction", None, 2),
        ("prompt", "What did we talk about?", 1),
    ]
    assert (api["turns"], api["turns_all"]) == (2, 3)
    boundary = [
        e
        for path in sorted(FIXTURES.glob("n_compact.[0-9].stdout.jsonl"))
        for e in map(json.loads, path.read_text().splitlines())
        if e.get("subtype") == "compact_boundary"
    ]
    assert [b["compact_metadata"]["trigger"] for b in boundary] == ["manual"]
    # A typed /compact says nothing about where Claude Code compacts on its own.
    assert run.engine.learned_thresholds() == {}
    assert api["compaction_threshold_tokens"] == 967_000
    # 2.1.332 reports the whole session's cost in each run's result: the last one is it.
    assert run.session.signals.cost_usd == pytest.approx(truth("n_compact")[-1]["total_cost_usd"])


def test_a_compaction_asked_again_is_one_turn_even_after_a_late_prompt() -> None:
    # A lagging core sees the first compaction request before run 1's prompt (the prompt's
    # side stream opened late): the prompt opens a turn of its own, and the compaction
    # asked again (the same 4 messages) still joins its compaction turn, not the prompt's.
    recs = records("n_compact")
    run = Run()
    run.play([recs[1], recs[0], recs[2], recs[3]])
    api = run.session.as_api()
    assert api["compactions"] == 1
    assert sorted((t.trigger, t.prompt, t.requests, t.compaction) for t in run.session.turns) == [
        ("compaction", None, 2, True),
        ("prompt", "Say hello in five words.", 1, False),
        ("prompt", "What did we talk about?", 1, False),
    ]
    assert (api["turns"], api["turns_all"]) == (2, 3)


def test_an_automatic_compaction_teaches_the_threshold() -> None:
    recs = records("n_compact_tagged")
    continuation = recs[2]["body"]["messages"][0]["content"]
    assert any("<command-name>/compact</command-name>" in b.get("text", "") for b in continuation)
    # Without the echo of a typed /compact, Claude Code compacted on its own.
    recs[2]["body"]["messages"][0]["content"] = [
        b for b in continuation if "<command-name>" not in b.get("text", "")
    ]
    run = Run()
    run.play(recs)
    # The compaction request's whole input: 1,669 in + 9 written + 12,267 read.
    assert run.engine.learned_thresholds() == {"claude-opus-5-5": 1_669 + 9 + 12_267}
    assert run.session.as_api()["compactions"] == 1


def test_an_aborted_stream_is_kept_apart_from_the_cost() -> None:
    # The first attempt reported usage in message_start, then an SSE error; Claude Code
    # resent it without streaming and billed only the resend (stream-json modelUsage).
    run = Run()
    run.play(records("n_sse_error"))
    api = run.session.as_api()
    (result,) = truth("n_sse_error")
    usage = result["modelUsage"]["claude-opus-5-5"]
    assert run.session.signals.cost_usd == pytest.approx(result["total_cost_usd"])
    assert (api["input_tokens"], api["output_tokens"]) == (
        usage["inputTokens"],
        usage["outputTokens"],
    )
    assert api["cache_read_tokens"] == usage["cacheReadInputTokens"]
    assert api["cache_creation_tokens"] == usage["cacheCreationInputTokens"] == 0
    # What the aborted attempt reported: 35 in, 2 out, 12,263 5m writes.
    assert (api["aborted_input_tokens"], api["aborted_output_tokens"]) == (35, 2)
    assert api["aborted_cache_creation_tokens"] == 12_263
    assert api["aborted_cost_usd"] == pytest.approx((35 * 4 + 2 * 20 + 12_263 * 5) / 1e6)
    first, resend = run.tracker.recent_requests(run.session.session_id)
    assert first.signals.cost_usd == 0.0 and first.signals.aborted_cost_usd is not None
    assert resend.retry and resend.signals.cost_usd == pytest.approx(result["total_cost_usd"])
    # The aborted attempt wrote the cache; the resend read it: a hit, not a cold start.
    assert resend.signals.cache_status == "hit"
    assert (api["turns"], run.session.turns[0].outcome) == (1, "completed")


def drifted(rec: dict[str, Any]) -> dict[str, Any]:
    """A request as a Claude Code newer than every verified one might send it."""
    rec = json.loads(json.dumps(rec))
    headers = [(k, v) for k, v in rec["headers"] if k.lower() != "anthropic-beta"]
    beta = dict((k.lower(), v) for k, v in rec["headers"])["anthropic-beta"]
    headers.append(("anthropic-beta", beta + ",teleport-2027-01-01"))
    headers.append(("X-Claude-Code-Workspace-Id", "w1"))
    rec["headers"] = headers
    body = rec["body"]
    body["model"] = "claude-opus-6"
    body["speculation"] = {"type": "auto"}
    system = body["system"]
    system[0]["text"] = system[0]["text"].replace("cc_version=2.1.332", "cc_version=2.1.400")
    rec["response"] = {**rec["response"], "model": "claude-opus-6"}
    return rec


def test_drift_marks_the_session_unverified_and_leaves_numbers_unknown() -> None:
    run = Run()
    rec = drifted(records("n_plain")[0])
    assert "cc_version=2.1.400" in rec["body"]["system"][0]["text"]
    result = reply(rec)
    result.block_types.append("hologram")
    result.unknown_event_types.append("message_teleport")
    run.replayer.exchange(rec, result=result)
    api = run.session.as_api()
    assert api["verified"] is False
    assert api["unverified_reasons"] == [
        "version 2.1.400",
        "model claude-opus-6",
        "beta teleport-2027-01-01",
        "body_key speculation",
        "header x-claude-code-workspace-id",
        "sse_event message_teleport",
        "content_block hologram",
    ]
    assert run.engine.drift.view() == {
        "version": 1,
        "model": 2,  # asked for, and answered by
        "beta": 1,
        "body_key": 1,
        "header": 1,
        "sse_event": 1,
        "content_block": 1,
    }
    # Unknown model: no cost and no window, never a guess.
    assert (api["estimated_cost_usd"], api["unpriced_requests"]) == (None, 1)
    assert (api["context_window_tokens"], api["context_fill"]) == (None, None)


def test_the_verified_versions_leave_no_drift() -> None:
    for name in ("n_plain", "n_tool", "n_toolsearch", "n_subagent", "n_subagent_bg", "n_compact"):
        run = Run()
        run.play(records(name))
        assert run.session.as_api()["unverified_reasons"] == [], name
        assert run.engine.drift.view() == {}, name


def test_cost_by_token_class_adds_up_to_claude_code_cost() -> None:
    run = Run()
    run.play(records("n_tool"))
    # stream-json modelUsage of the run: 87 in, 37 out, 12,259 read, 12,327 5m writes; at
    # $4 / $20 / $0.20 / $5 per million tokens.
    expected = {
        "input": 87 * 4 / 1e6,
        "output": 37 * 20 / 1e6,
        "cache_write_5m": 12_327 * 5 / 1e6,
        "cache_write_1h": 0.0,
        "cache_read": 12_259 * 0.2 / 1e6,
    }
    api = run.session.as_api()
    assert run.session.signals.cost_by_class == pytest.approx(expected)
    assert api["cost_by_class"] == {k: round(v, 6) for k, v in expected.items()}
    assert sum(expected.values()) == pytest.approx(truth("n_tool")[-1]["total_cost_usd"])
    (turn,) = run.session.turns
    assert turn.cost_by_class == pytest.approx(expected)
    # Cache reads are most of the tokens and a small part of the money.
    assert api["cache_read_tokens"] > api["cache_creation_tokens"] / 2
    assert expected["cache_read"] < expected["cache_write_5m"] / 20
    # The main thread paid it all: no subagent ran.
    assert (api["main_cost_usd"], api["subagent_cost_usd"]) == (api["estimated_cost_usd"], None)


def test_the_session_cost_splits_into_main_thread_and_subagents() -> None:
    run, tool_use_id = background_run()
    s = run.session
    api = s.as_api()
    # The subagent's one request: 35 in, 11 out, 7,058 read (fixture n_subagent_bg).
    sub = (35 * 4 + 11 * 20 + 7_058 * 0.2) / 1e6
    assert api["subagent_cost_usd"] == pytest.approx(sub, abs=1e-6)
    assert api["main_cost_usd"] + api["subagent_cost_usd"] == pytest.approx(
        truth("n_subagent_bg")[-1]["total_cost_usd"], abs=2e-6
    )
    (launching, notified) = [t.as_api() for t in s.turns]
    assert notified["subagents"] == []
    (run_of_it,) = launching["subagents"]
    assert run_of_it["tool_use_id"] == tool_use_id
    assert (run_of_it["agent_id"], run_of_it["background"], run_of_it["requests"]) == (
        AGENT_ID,
        True,
        1,
    )
    assert (run_of_it["input_tokens"], run_of_it["cache_read_tokens"]) == (35, 7_058)
    assert run_of_it["cost_usd"] == pytest.approx(sub, abs=1e-6)
    assert run_of_it["duration_ms"] == pytest.approx(8_500)


def test_usage_no_model_allows_is_flagged_not_billed() -> None:
    # A forged or garbled stream claiming a trillion tokens must not become a $4M session.
    recs = records("n_tool")
    bogus = json.loads(json.dumps(recs[1]))
    bogus["response"]["usage"]["cache_read_input_tokens"] = 10**12
    run = Run()
    run.play([recs[0], bogus])
    api = run.session.as_api()
    first = recs[0]["response"]["usage"]
    # Only the first, plausible response counts: 35 in, 18 out, 12,259 5m writes.
    assert (api["input_tokens"], api["cache_read_tokens"]) == (first["input_tokens"], 0)
    expected = (35 * 4 + 18 * 20 + 12_259 * 5) / 1e6
    assert run.session.signals.cost_usd == pytest.approx(expected)
    assert run.tracker.implausible_usage == 1
    assert api["verified"] is False
    assert api["unverified_reasons"] == ["usage beyond the model's limits (left out of the totals)"]
    assert run.engine.drift.view() == {"usage": 1}


def test_a_task_notification_overtaking_the_turns_last_response_is_a_turn_of_its_own() -> None:
    # Through Envoy the notification request can reach the core before the end of the
    # response that finished the launching turn (two side streams): it waits for it.
    from clauditor.domain.events import (
        ExchangeFinished,
        QuotaHeaders,
        RequestParsed,
        RequestStarted,
        ResponseStarted,
    )
    from clauditor.domain.interpreter import classify_error
    from clauditor.parsing.request import parse_request
    from tests.helpers import body_bytes, headers_of

    recs = records("n_subagent_bg")
    tool_use_id = recs[0]["response"]["content"][-1]["id"]
    recs[3]["body"]["messages"][-1]["content"] = [
        {"type": "text", "text": notification(tool_use_id)}
    ]
    run = Run()
    run.play(recs[:1])
    t, clock = run.tracker, run.clock
    sid = dict((k.lower(), v) for k, v in recs[0]["headers"])["x-claude-code-session-id"]

    def parsed(x: int, rec: dict[str, Any]) -> None:
        t.handle(RequestStarted(x, clock.now(), sid))
        req = parse_request(headers_of(rec), body_bytes(rec))
        t.handle(RequestParsed(x, clock.now(), clock.now(), req, "a"))

    parsed(100, recs[1])  # the launch result: its response, streaming, will end the turn
    t.handle(ResponseStarted(100, clock.now(), 200, "req_100", QuotaHeaders()))
    clock.advance(0.2)
    parsed(101, recs[3])  # the notification, before that response ends
    result = reply(recs[1])
    t.handle(ExchangeFinished(100, clock.now(), 200, result, classify_error(200, result)))
    s = run.session
    assert [(turn.trigger, turn.outcome) for turn in s.turns] == [
        ("prompt", "completed"),
        ("task_notification", "in_progress"),
    ]


def test_each_request_says_how_its_stream_ended() -> None:
    # n_sse_error: the first attempt died of an SSE error, Claude Code's resend succeeded.
    run = Run()
    run.play(records("n_sse_error"))
    first, resend = run.tracker.recent_requests(run.session.session_id)
    assert (first.outcome, resend.outcome) == ("recovered", "complete")
    assert first.as_api()["outcome"] == "recovered" and first.error_type == "overloaded_error"
