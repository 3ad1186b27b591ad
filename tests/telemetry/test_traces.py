"""Span shape from fixture replays, read from an InMemorySpanExporter."""

from __future__ import annotations

import copy
import json

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode, format_span_id, format_trace_id

from clauditor.telemetry import names as n
from clauditor.telemetry.traces import finish_reason, ns, split_mcp
from tests.helpers import fixture_posts, headers_of
from tests.sessions.replay import cut
from tests.telemetry.conftest import Rig, make_rig

BASH_SESSION = "04d0a982-8c0f-4567-aba3-6d8e967e76cc"


def _by_id(spans: list[ReadableSpan]) -> dict[int, ReadableSpan]:
    return {s.context.span_id: s for s in spans}


def _parent(span: ReadableSpan, spans: list[ReadableSpan]) -> ReadableSpan | None:
    if span.parent is None:
        return None
    return _by_id(spans).get(span.parent.span_id)


def _tool_round_trip(rig: Rig) -> None:
    first, second = fixture_posts("b_tool_bash")
    rig.replay.exchange(first, duration=2.0)
    rig.clock.advance(0.25)  # Claude Code runs `echo hi`
    rig.replay.exchange(second, duration=1.0)


def test_tool_round_trip_shape_times_and_attributes(rig: Rig) -> None:
    t0 = rig.clock.now()
    _tool_round_trip(rig)
    spans = rig.spans()
    roots = [s for s in spans if s.parent is None]
    chats = rig.named("chat ")
    tools = rig.named("execute_tool ")
    assert (len(roots), len(chats), len(tools), len(spans)) == (1, 2, 1, 4)
    (root,) = roots
    (tool,) = tools
    assert root.name == "invoke_agent claude-code"
    assert root.kind is SpanKind.INTERNAL
    assert all(_parent(s, spans) is root for s in [*chats, tool])
    assert len({s.context.trace_id for s in spans}) == 1

    # Explicit times from the exchange timestamps, not from when the tracker ran.
    first, second = sorted(chats, key=lambda s: s.start_time)
    assert (first.start_time, first.end_time) == (ns(t0), ns(t0 + 2.0))
    assert (tool.start_time, tool.end_time) == (ns(t0 + 2.0), ns(t0 + 2.25))
    assert (second.start_time, second.end_time) == (ns(t0 + 2.25), ns(t0 + 3.25))
    assert (root.start_time, root.end_time) == (ns(t0), ns(t0 + 3.25))

    a = root.attributes
    assert a[n.GEN_AI_OPERATION_NAME] == "invoke_agent"
    assert a[n.GEN_AI_AGENT_NAME] == "claude-code"
    assert a[n.GEN_AI_CONVERSATION_ID] == a[n.SESSION_ID] == BASH_SESSION
    assert a[n.TURN_NUMBER] == 1
    assert a[n.PROMPT_LENGTH] == len("Run the shell command: echo hi")
    assert a[n.TURN_OUTCOME] == "completed"
    # Turn totals; input follows the Anthropic rule (input + cache_read + cache_creation).
    assert a[n.GEN_AI_USAGE_INPUT_TOKENS] == (1559 + 41) + 17552 + (17552 + 1609)
    assert a[n.GEN_AI_USAGE_OUTPUT_TOKENS] == 18 + 19
    assert a[n.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 17552
    assert a[n.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] == 17552 + 1609
    assert n.GEN_AI_INPUT_MESSAGES not in a  # content capture is off by default
    # Where its 3.25 s went: 2 s and 1 s exchanges (first token halfway), a 0.25 s tool.
    time = {
        k.removeprefix(n.TURN_TIME_PREFIX): v
        for k, v in a.items()
        if k.startswith(n.TURN_TIME_PREFIX)
    }
    assert time == {
        "waiting_for_model_ms": 1500.0,
        "generating_ms": 1500.0,
        "tools_ms": 250.0,
        "waiting_for_you_ms": 0.0,
        "retries_ms": 0.0,
        "subagents_ms": 0.0,
    }

    c = first.attributes
    assert first.name == "chat claude-opus-4-8"
    assert first.kind is SpanKind.CLIENT
    assert c[n.GEN_AI_OPERATION_NAME] == "chat"
    assert c[n.GEN_AI_PROVIDER_NAME] == "anthropic"
    assert c[n.GEN_AI_REQUEST_MODEL] == c[n.GEN_AI_RESPONSE_MODEL] == "claude-opus-4-8"
    assert c[n.GEN_AI_REQUEST_MAX_TOKENS] == 64000
    assert c[n.GEN_AI_REQUEST_STREAM] is True
    # The replay sends the fake upstream's bytes, which mint a fresh Anthropic-style id.
    assert c[n.GEN_AI_RESPONSE_ID].startswith("msg_01")
    assert c[n.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_calls",)
    assert c[n.STOP_REASON] == "tool_use"
    assert c[n.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] == 1.0
    assert c[n.GEN_AI_USAGE_INPUT_TOKENS] == 1559 + 0 + 17552
    assert c[n.GEN_AI_USAGE_OUTPUT_TOKENS] == 18
    assert c[n.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 0
    assert c[n.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] == 17552
    assert (c[n.SERVER_ADDRESS], c[n.SERVER_PORT]) == ("api.anthropic.com", 443)
    assert c[n.HTTP_RESPONSE_STATUS_CODE] == 200
    assert c[n.REQUEST_KIND] == "main"
    assert c[n.RETRY] is False
    assert c[n.FALLBACK] is False
    assert c[n.ANTHROPIC_REQUEST_ID] == "req_011CnaIgEtNS5mExywu692Ry"
    assert c[n.CACHE_CREATION_1H_TOKENS] == 0
    assert first.status.status_code is StatusCode.UNSET
    assert second.attributes[n.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    # The debug signals (sessions.signals) ride along on the chat spans.
    assert (c[n.CACHE_STATUS], second.attributes[n.CACHE_STATUS]) == ("cold", "hit")
    assert c[n.CACHE_TTL_SECONDS] == 300
    assert c[n.CONTEXT_FILL] == (1559 + 17552) / 1_000_000
    costs = [float(s.attributes[n.COST_USD]) for s in (first, second)]  # type: ignore[arg-type]
    assert all(x > 0 for x in costs)
    assert a[n.TURN_COST_USD] == round(sum(costs), 6)

    t = tool.attributes
    assert tool.name == "execute_tool Bash"
    assert tool.kind is SpanKind.INTERNAL
    assert t[n.GEN_AI_OPERATION_NAME] == "execute_tool"
    assert t[n.GEN_AI_TOOL_NAME] == "Bash"
    assert t[n.GEN_AI_TOOL_CALL_ID] == "toolu_01garTg1cCYCg3o0x3s0K7oL"
    assert t[n.GEN_AI_TOOL_TYPE] == "function"
    assert t[n.TOOL_OUTCOME] == "ok"
    assert tool.status.status_code is StatusCode.UNSET
    assert rig.telemetry.traces.open_spans() == 0


def test_ids_land_on_the_records_for_the_store(rig: Rig) -> None:
    _tool_round_trip(rig)
    spans = rig.spans()
    (root,) = [s for s in spans if s.parent is None]
    trace_id = format_trace_id(root.context.trace_id)
    session = rig.tracker.sessions[BASH_SESSION]
    assert session.turns[0].trace_id == trace_id
    records = rig.tracker.recent_requests(BASH_SESSION)
    chat_ids = {format_span_id(s.context.span_id) for s in rig.named("chat ")}
    assert {r.trace_id for r in records} == {trace_id}
    assert {r.span_id for r in records} == chat_ids
    assert records[0].as_api()["trace_id"] == trace_id


def test_trace_id_is_known_when_the_request_row_is_first_written() -> None:
    from clauditor.sessions.listener import TrackerListener

    seen: list[str | None] = []

    class StoreLike(TrackerListener):
        def request_started(self, session, request):  # type: ignore[no-untyped-def]
            seen.append(request.trace_id)

    rig = make_rig()
    rig.tracker.listeners.append(StoreLike())
    _tool_round_trip(rig)
    assert len(seen) == 2 and all(seen) and len(set(seen)) == 1


def test_subagent_run_nests_under_its_agent_call(rig: Rig) -> None:
    records = fixture_posts("e_subagent")
    for record in records:
        rig.replay.exchange(record)
        rig.clock.advance(0.1)
    spans = rig.spans()
    assert len({s.context.trace_id for s in spans}) == 1
    (root,) = [s for s in spans if s.parent is None]
    (agent_tool,) = rig.named("execute_tool Agent")
    (sub,) = rig.named("invoke_agent claude-code-subagent")
    assert _parent(agent_tool, spans) is root
    assert _parent(sub, spans) is agent_tool
    chats = sorted(rig.named("chat "), key=lambda s: s.start_time)
    assert [s.attributes[n.REQUEST_KIND] for s in chats] == ["main", "subagent", "main"]
    assert [_parent(s, spans) for s in chats] == [root, sub, root]
    agent_id = records[0]["response"]["content"][1]["id"]
    assert agent_tool.attributes[n.GEN_AI_TOOL_CALL_ID] == agent_id
    assert sub.attributes[n.GEN_AI_OPERATION_NAME] == "invoke_agent"
    assert sub.attributes[n.SUBAGENT] is True
    # The subagent run lies within its Agent call, which lies within the turn.
    assert agent_tool.start_time <= sub.start_time <= sub.end_time <= agent_tool.end_time
    assert root.start_time <= agent_tool.start_time and agent_tool.end_time <= root.end_time
    sub_chat = chats[1]
    assert (
        sub.attributes[n.GEN_AI_USAGE_OUTPUT_TOKENS]
        == (sub_chat.attributes[n.GEN_AI_USAGE_OUTPUT_TOKENS])
    )
    assert rig.telemetry.traces.open_spans() == 0


def test_529_retries_error_spans_then_success_in_one_turn(rig: Rig) -> None:
    for record in fixture_posts("f_529_retry"):
        rig.replay.exchange(record, duration=0.1)
        rig.clock.advance(0.5)
    spans = rig.spans()
    (root,) = [s for s in spans if s.parent is None]
    chats = sorted(rig.named("chat "), key=lambda s: s.start_time)
    assert len(chats) == 4
    assert all(_parent(s, spans) is root for s in chats)
    for failed in chats[:3]:
        assert failed.status.status_code is StatusCode.ERROR
        assert failed.attributes[n.ERROR_TYPE] == "overloaded_error"
        assert failed.attributes[n.HTTP_RESPONSE_STATUS_CODE] == 529
        assert failed.attributes[n.GEN_AI_RESPONSE_FINISH_REASONS] == ("error",)
    assert [s.attributes[n.RETRY] for s in chats] == [False, True, True, True]
    ok = chats[3]
    assert ok.status.status_code is StatusCode.UNSET
    assert n.ERROR_TYPE not in ok.attributes
    assert root.attributes[n.TURN_OUTCOME] == "completed"
    assert root.attributes[n.TURN_ERRORS] == 3
    assert root.status.status_code is StatusCode.UNSET


def test_fallback_sets_requested_and_actual(rig: Rig) -> None:
    (record,) = fixture_posts("a_plain_text")
    swapped = copy.deepcopy(record)
    swapped["response"]["model"] = "claude-sonnet-4-6"
    rig.replay.exchange(swapped)
    (chat,) = rig.named("chat ")
    a = chat.attributes
    requested = a[n.GEN_AI_REQUEST_MODEL]
    assert requested != "claude-sonnet-4-6"
    assert a[n.GEN_AI_RESPONSE_MODEL] == "claude-sonnet-4-6"
    assert a[n.FALLBACK] is True
    assert a[n.FALLBACK_REQUESTED] == requested
    assert a[n.FALLBACK_ACTUAL] == "claude-sonnet-4-6"


def test_dated_model_id_is_not_a_fallback(rig: Rig) -> None:
    (record,) = fixture_posts("a_plain_text")
    dated = copy.deepcopy(record)
    dated["response"]["model"] = record["body"]["model"] + "-20260101"
    rig.replay.exchange(dated)
    (chat,) = rig.named("chat ")
    assert chat.attributes[n.FALLBACK] is False
    assert n.FALLBACK_REQUESTED not in chat.attributes


def test_two_concurrent_sessions_never_share_a_trace() -> None:
    rig = make_rig()
    a1, a2 = fixture_posts("b_tool_bash")
    (b1,) = fixture_posts("a_plain_text")
    # Interleave: session A's tool round trip with session B's turn in between.
    rig.replay.exchange(a1)
    rig.replay.exchange(b1)
    rig.replay.exchange(a2)
    by_session: dict[str, set[int]] = {}
    for span in rig.spans():
        by_session.setdefault(str(span.attributes[n.SESSION_ID]), set()).add(span.context.trace_id)
    assert len(by_session) == 2
    a_traces, b_traces = by_session.values()
    assert len(a_traces) == len(b_traces) == 1
    assert not a_traces & b_traces


def test_each_turn_is_its_own_trace(rig: Rig) -> None:
    for record in fixture_posts("k2_interactive_tmux_json_title"):
        rig.replay.exchange(record)
        rig.clock.advance(5)
    spans = rig.spans()
    roots = [s for s in spans if s.name == "invoke_agent claude-code"]
    assert [r.attributes[n.TURN_NUMBER] for r in roots] == [1, 2]
    assert roots[0].context.trace_id != roots[1].context.trace_id
    # The title call came before any turn: a trace of its own, a root chat span.
    title = next(s for s in spans if s.attributes.get(n.REQUEST_KIND) == "title")
    assert title.parent is None
    assert title.context.trace_id not in {r.context.trace_id for r in roots}


def test_tool_error_sets_error_status_and_type(rig: Rig) -> None:
    first, second = fixture_posts("b_tool_bash")
    rig.replay.exchange(first)
    errored = copy.deepcopy(second)
    last = errored["body"]["messages"][-1]
    last["content"] = [dict(b, is_error=True) for b in last["content"]]
    rig.replay.exchange(errored)
    (tool,) = rig.named("execute_tool ")
    assert tool.status.status_code is StatusCode.ERROR
    assert tool.attributes[n.ERROR_TYPE] == "tool_error"
    assert tool.attributes[n.TOOL_OUTCOME] == "error"


def test_abandoned_turn_is_closed_after_the_idle_timeout(rig: Rig) -> None:
    first, _ = fixture_posts("b_tool_bash")
    t0 = rig.clock.now()
    rig.replay.exchange(first)  # asks for Bash; the tool_result never comes
    assert rig.telemetry.traces.open_spans() == 2  # the turn and the tool
    assert not rig.named("invoke_agent")
    rig.clock.advance(301)
    rig.tracker.tick()
    (root,) = rig.named("invoke_agent")
    (tool,) = rig.named("execute_tool ")
    assert root.attributes[n.TURN_OUTCOME] == "abandoned"
    assert tool.attributes[n.TOOL_OUTCOME] == "abandoned"
    assert root.end_time == ns(t0 + 1.0 + 301)
    assert tool.end_time <= root.end_time
    assert rig.telemetry.traces.open_spans() == 0


def test_truncated_stream_is_an_error_and_interrupted_turn_closes(rig: Rig) -> None:
    records = fixture_posts("k2_interactive_tmux_json_title")
    rig.replay.exchange(cut(records[1], "truncated"))  # no event: the turn stays open
    rig.replay.exchange(records[2])
    roots = rig.named("invoke_agent")
    assert [r.attributes[n.TURN_OUTCOME] for r in roots] == ["interrupted", "completed"]
    broken = next(s for s in rig.named("chat ") if s.status.status_code is StatusCode.ERROR)
    # A 200 event stream that ends before any event: cut short (the interpreter's label;
    # the fake path this test once took called it an invalid body).
    assert broken.attributes[n.ERROR_TYPE] == "truncated"
    assert broken.attributes[n.GEN_AI_RESPONSE_FINISH_REASONS] == ("error",)
    assert rig.telemetry.traces.open_spans() == 0


def test_shutdown_closes_open_turns_tools_and_in_flight_requests() -> None:
    from clauditor.domain.events import RequestParsed, RequestStarted
    from clauditor.parsing.request import parse_request
    from tests.helpers import body_bytes

    rig = make_rig()
    first, second = fixture_posts("b_tool_bash")
    rig.replay.exchange(first)
    # The tool_result request arrives, then the core stops before its response ends.
    ts = rig.clock.now()
    rig.tracker.handle(RequestStarted(99, ts, BASH_SESSION))
    req = parse_request(headers_of(second), body_bytes(second))
    rig.tracker.handle(RequestParsed(99, ts, ts, req, "api.anthropic.com"))
    rig.clock.advance(1)
    rig.tracker.shutdown()
    rig.telemetry.shutdown(timeout=1.0)
    assert rig.telemetry.traces.open_spans() == 0
    (root,) = rig.named("invoke_agent")
    assert root.attributes[n.TURN_OUTCOME] == "abandoned"
    chats = rig.named("chat ")
    assert len(chats) == 2
    assert any(s.attributes.get(n.ERROR_TYPE) == "incomplete" for s in chats)
    assert all(s.end_time is not None for s in rig.spans())


def test_content_capture_is_opt_in() -> None:
    rig = make_rig(capture_content=True)
    _tool_round_trip(rig)
    (root,) = rig.named("invoke_agent")
    messages = json.loads(str(root.attributes[n.GEN_AI_INPUT_MESSAGES]))
    assert messages[0]["parts"][0]["content"] == "Run the shell command: echo hi"
    assert n.GEN_AI_OUTPUT_MESSAGES in root.attributes
    rig.telemetry.shutdown(timeout=1.0)


def test_mcp_tool_names_split() -> None:
    assert split_mcp("mcp__github__create_issue") == ("github", "create_issue")
    assert split_mcp("mcp__my_server__do__it") == ("my_server", "do__it")
    assert split_mcp("Bash") is None
    assert split_mcp("mcp__") is None


def test_mcp_tool_span_carries_server_and_tool(rig: Rig) -> None:
    first, second = fixture_posts("b_tool_bash")
    first, second = copy.deepcopy(first), copy.deepcopy(second)
    first["response"]["content"][-1]["name"] = "mcp__github__create_issue"
    rig.replay.exchange(first)
    rig.replay.exchange(second)
    (tool,) = rig.named("execute_tool ")
    assert tool.name == "execute_tool mcp__github__create_issue"
    assert tool.attributes[n.MCP_SERVER] == "github"
    assert tool.attributes[n.MCP_TOOL] == "create_issue"


def test_finish_reason_normalisation() -> None:
    assert finish_reason("end_turn", None) == "stop"
    assert finish_reason("stop_sequence", None) == "stop"
    assert finish_reason("max_tokens", None) == "length"
    assert finish_reason("tool_use", None) == "tool_calls"
    assert finish_reason("pause_turn", None) == "pause_turn"
    assert finish_reason(None, "truncated") == "error"
    assert finish_reason(None, None) is None


def test_interrupted_tool_keeps_its_result_and_its_turn(rig: Rig) -> None:
    first, second = fixture_posts("b_tool_bash")
    rig.replay.exchange(first)
    rig.clock.advance(5)
    # The user pressed Esc during the tool and typed a new prompt: Claude Code sends the
    # interrupted tool_result (is_error) together with the new text.
    interrupted = copy.deepcopy(second)
    last = interrupted["body"]["messages"][-1]
    last["content"] = [
        dict(b, is_error=True, content="[Request interrupted by user for tool use]")
        for b in last["content"]
    ] + [{"type": "text", "text": "do something else instead"}]
    t_new = rig.clock.now()
    rig.replay.exchange(interrupted)
    spans = rig.spans()
    first_root, second_root = sorted(rig.named("invoke_agent"), key=lambda s: s.start_time)
    assert first_root.attributes[n.TURN_OUTCOME] == "interrupted"
    assert second_root.attributes[n.TURN_OUTCOME] == "completed"
    (tool,) = rig.named("execute_tool ")
    assert _parent(tool, spans) is first_root
    assert tool.attributes[n.TOOL_OUTCOME] == "error"
    assert tool.end_time == ns(t_new)
    assert rig.telemetry.traces.open_spans() == 0


def test_subagent_overtaking_its_launching_response_still_nests(rig: Rig) -> None:
    """Envoy's side streams race: the subagent's first request can reach the core before
    the end of the response that launched it, and the Agent tool_result before the
    subagent's own end."""
    from clauditor.domain.events import (
        ExchangeFinished,
        RequestParsed,
        RequestStarted,
        ResponseStarted,
        ToolUseSeen,
    )
    from clauditor.domain.events import QuotaHeaders as Quota
    from clauditor.domain.interpreter import classify_error
    from clauditor.parsing.request import parse_request
    from tests.helpers import body_bytes
    from tests.sessions.replay import result_of

    main1, sub, main2 = fixture_posts("e_subagent")
    t = rig.tracker
    clock = rig.clock

    def begin(ex: int, record: dict) -> None:
        ts = clock.now()
        sid = headers_of(record).get("x-claude-code-session-id")
        t.handle(RequestStarted(ex, ts, sid))
        req = parse_request(headers_of(record), body_bytes(record))
        t.handle(RequestParsed(ex, ts, ts, req, "api.anthropic.com"))
        t.handle(ResponseStarted(ex, ts, 200, None, Quota()))
        for tu in result_of(record["response"]).tool_uses:
            t.handle(ToolUseSeen(ex, ts, tu))

    def finish(ex: int, record: dict) -> None:
        result = result_of(record["response"])
        t.handle(ExchangeFinished(ex, clock.now(), 200, result, classify_error(200, result)))

    begin(1, main1)
    clock.advance(0.1)
    begin(2, sub)  # the subagent starts before its launching response has ended
    clock.advance(0.1)
    finish(1, main1)
    clock.advance(0.5)
    begin(3, main2)  # the Agent tool_result arrives before the subagent's end
    finish(2, sub)
    clock.advance(0.5)
    finish(3, main2)

    spans = rig.spans()
    (root,) = [s for s in spans if s.parent is None]
    (agent,) = rig.named("execute_tool Agent")
    (run,) = rig.named("invoke_agent claude-code-subagent")
    assert _parent(agent, spans) is root and _parent(run, spans) is agent
    sub_chat = next(s for s in rig.named("chat ") if s.attributes[n.REQUEST_KIND] == "subagent")
    assert _parent(sub_chat, spans) is run
    assert agent.start_time <= run.start_time <= run.end_time <= agent.end_time
    assert (
        run.attributes[n.GEN_AI_USAGE_OUTPUT_TOKENS]
        == (sub_chat.attributes[n.GEN_AI_USAGE_OUTPUT_TOKENS])
    )
    assert rig.telemetry.traces.open_spans() == 0
