"""Traces over the real wire: `clauditor up --otlp-endpoint` with real Envoy, the fake
Anthropic and a real OTLP/gRPC receiver; decode what arrives and check the shape."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clauditor.sim.claude import SyntheticSession, TurnResult
from clauditor.sim.server import FakeUpstream
from tests.compat.clis import Cli
from tests.helpers import wait_until
from tests.integration.otlp_receiver import Receiver, Span, otlp_receiver
from tests.integration.stack import start_stack

pytestmark = pytest.mark.integration

CLIENT, INTERNAL = 3, 1  # opentelemetry.proto.trace.v1.Span.SpanKind
STATUS_ERROR = 2
BASH = '[[fake:tool Bash {"command": "ls -la /tmp"}]]'
AGENT = '[[fake:tool Agent {"description": "look around", "prompt": "list the repo files"}]]'
TOOL_SECONDS = 0.05


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "500")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "clauditor-it")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=ci")
    with otlp_receiver() as r:
        yield r


class ToolTakesTime(SyntheticSession):
    """Tools that take a moment, like real ones: without it the tool_result request can
    reach the core before the end of the response that asked for it (side-stream skew)."""

    async def _tool_result(self, call: dict[str, Any], out: TurnResult) -> dict[str, Any]:
        await asyncio.sleep(TOOL_SECONDS)
        return await super()._tool_result(call, out)


def _session_spans(spans: list[Span], session_id: str) -> list[Span]:
    return [s for s in spans if s.attributes.get("session.id") == session_id]


def _roots(spans: list[Span]) -> list[Span]:
    return [s for s in spans if s.name == "invoke_agent claude-code"]


def test_a_real_run_yields_turn_traces_over_otlp_grpc(
    receiver: Receiver, fake: FakeUpstream, tmp_path: Path
) -> None:
    stack = start_stack(fake.url, tmp_path, "--otlp-endpoint", receiver.endpoint)
    try:

        async def one(prompt: str) -> str:
            async with SyntheticSession(stack.proxy_url) as s:
                await s.turn(prompt)
                return s.session_id

        async def drive() -> tuple[str, str]:
            async with ToolTakesTime(stack.proxy_url) as a:
                b_task = asyncio.create_task(one("a concurrent session"))
                await a.turn(f"list the temp dir {BASH}")
                # A person reads the answer before the next prompt; without a pause the next
                # request can overtake the previous response's end on Envoy's side streams.
                await asyncio.sleep(0.3)
                await a.turn(f"now ask a subagent {AGENT}")
                return a.session_id, await b_task

        a_id, b_id = asyncio.run(drive())

        def complete() -> list[Span] | None:
            spans = receiver.snapshot()
            a = _session_spans(spans, a_id)
            b = _session_spans(spans, b_id)
            ok = len(_roots(a)) == 2 and len(_roots(b)) == 1
            ok = ok and len([s for s in a if s.name.startswith("chat ")]) == 5
            return spans if ok else None

        spans = wait_until(complete, timeout=20)
        detail = stack.session(a_id)
        ours = len(_session_spans(spans, a_id)) + len(_session_spans(spans, b_id))

        def accounted() -> dict[str, int] | None:
            stats: dict[str, int] = stack.get("/api/stats").json()["telemetry"]
            return stats if stats["exported"] >= ours else None

        exported = wait_until(accounted, timeout=10)
    finally:
        assert stack.stop() == 0

    a = _session_spans(spans, a_id)
    b = _session_spans(spans, b_id)
    # Two concurrent sessions never share a trace; each turn is its own trace.
    assert not {s.trace_id for s in a} & {s.trace_id for s in b}
    first_root, second_root = sorted(_roots(a), key=lambda s: s.start_ns)
    assert first_root.trace_id != second_root.trace_id
    assert first_root.parent_span_id == "" and first_root.kind == INTERNAL
    assert first_root.resource["service.name"] == "clauditor-it"
    assert first_root.resource["deployment.environment.name"] == "ci"
    assert first_root.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert first_root.attributes["gen_ai.agent.name"] == "claude-code"
    assert first_root.attributes["gen_ai.conversation.id"] == a_id
    assert first_root.attributes["clauditor.turn.number"] == 1
    assert first_root.attributes["clauditor.turn.outcome"] == "completed"
    assert first_root.attributes["clauditor.prompt.length"] == len(f"list the temp dir {BASH}")

    # Turn 1: root → chat, execute_tool Bash, chat; times nest.
    t1 = [s for s in a if s.trace_id == first_root.trace_id]
    chats = sorted((s for s in t1 if s.name.startswith("chat ")), key=lambda s: s.start_ns)
    (bash,) = [s for s in t1 if s.name == "execute_tool Bash"]
    assert len(t1) == 4 and len(chats) == 2
    assert all(s.parent_span_id == first_root.span_id for s in [*chats, bash])
    # The tool runs from the end of the response asking for it to the next request (as the
    # core saw them: a loaded core sees the response end late, so no lower bound here).
    assert chats[0].end_ns <= bash.start_ns <= bash.end_ns == chats[1].start_ns
    assert first_root.start_ns == chats[0].start_ns and first_root.end_ns == chats[1].end_ns
    c = chats[0].attributes
    assert chats[0].kind == CLIENT and chats[0].name == "chat claude-opus-4-8"
    assert c["gen_ai.provider.name"] == "anthropic"
    assert c["gen_ai.request.model"] == c["gen_ai.response.model"] == "claude-opus-4-8"
    assert c["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert c["gen_ai.request.stream"] is True
    assert c["server.address"] == "127.0.0.1" and c["server.port"] == fake.port
    assert c["http.response.status_code"] == 200
    assert c["gen_ai.usage.input_tokens"] == (
        detail["requests"][0]["input_tokens"]
        + detail["requests"][0]["cache_read_tokens"]
        + detail["requests"][0]["cache_creation_tokens"]
    )
    assert c["anthropic.request_id"] == detail["requests"][0]["request_id"]
    assert c["gen_ai.response.time_to_first_chunk"] > 0
    assert c["clauditor.cache.status"] in ("cold", "hit", "partial", "miss")
    assert bash.attributes["gen_ai.tool.type"] == "function"
    assert bash.attributes["clauditor.tool.outcome"] == "ok"

    # Turn 2: the subagent run nests under the execute_tool Agent span.
    t2 = [s for s in a if s.trace_id == second_root.trace_id]
    (agent,) = [s for s in t2 if s.name == "execute_tool Agent"]
    (sub,) = [s for s in t2 if s.name == "invoke_agent claude-code-subagent"]
    sub_chats = [s for s in t2 if s.parent_span_id == sub.span_id]
    assert agent.parent_span_id == second_root.span_id
    assert sub.parent_span_id == agent.span_id
    assert [s.attributes["clauditor.request.kind"] for s in sub_chats] == ["subagent"]
    assert agent.start_ns <= sub.start_ns <= sub.end_ns <= agent.end_ns

    # The API hands out the same trace ids (jump from clauditor to the trace backend).
    by_turn = {t["turn"]: t["trace_id"] for t in detail["turns"]}
    assert by_turn == {1: first_root.trace_id, 2: second_root.trace_id}
    req_traces = [r["trace_id"] for r in detail["requests"] if r["kind"] == "main"]
    assert req_traces[:2] == [first_root.trace_id] * 2
    assert exported["dropped"] == 0 and exported["open"] == 0
    # Metrics travel over the same endpoint.
    wait_until(lambda: "gen_ai.client.token.usage" in receiver.metric_names, timeout=10)


def test_529_retry_over_the_wire_is_an_error_span_then_success(
    receiver: Receiver, fake: FakeUpstream, tmp_path: Path
) -> None:
    stack = start_stack(fake.url, tmp_path, "--otlp-endpoint", receiver.endpoint)
    try:

        async def drive() -> str:
            async with SyntheticSession(stack.proxy_url) as s:
                await s.turn("please answer [[fake:status 529 1]]")
                return s.session_id

        sid = asyncio.run(drive())

        def done() -> list[Span] | None:
            spans = _session_spans(receiver.snapshot(), sid)
            return spans if _roots(spans) and len(spans) == 3 else None

        spans = wait_until(done, timeout=20)
    finally:
        assert stack.stop() == 0
    (root,) = _roots(spans)
    failed, ok = sorted((s for s in spans if s is not root), key=lambda s: s.start_ns)
    assert failed.status_code == STATUS_ERROR
    assert failed.attributes["error.type"] == "overloaded_error"
    assert failed.attributes["http.response.status_code"] == 529
    assert ok.status_code != STATUS_ERROR and ok.attributes["clauditor.retry"] is True
    assert failed.parent_span_id == ok.parent_span_id == root.span_id


def test_real_claude_code_session_traces(
    claude_cli: Cli, receiver: Receiver, fake: FakeUpstream, tmp_path: Path
) -> None:
    """The issue's "done when": real Claude Code with a tool, through `clauditor up`."""
    from tests.integration.test_claude_code import run_claude

    stack = start_stack(fake.url, tmp_path / "stack", "--otlp-endpoint", receiver.endpoint)
    try:
        prompt = 'Run it [[fake:tool Bash {"command": "echo hi", "description": "Print hi"}]]'
        lines = run_claude(claude_cli, stack.proxy_url, tmp_path / "cc", prompt)
        init = next(x for x in lines if x.get("type") == "system" and x.get("subtype") == "init")
        sid = init["session_id"]

        def done() -> list[Span] | None:
            spans = _session_spans(receiver.snapshot(), sid)
            return spans if _roots(spans) and len(spans) >= 4 else None

        spans = wait_until(done, timeout=20)
        detail = stack.session(sid)
    finally:
        assert stack.stop() == 0
    (root,) = _roots(spans)
    chats = sorted((s for s in spans if s.name.startswith("chat ")), key=lambda s: s.start_ns)
    (bash,) = [s for s in spans if s.name == "execute_tool Bash"]
    assert len(spans) == 4 and len(chats) == 2
    assert {s.trace_id for s in spans} == {root.trace_id}
    assert all(s.parent_span_id == root.span_id for s in [*chats, bash])
    assert root.attributes["gen_ai.conversation.id"] == sid
    assert root.attributes["clauditor.turn.outcome"] == "completed"
    assert chats[0].attributes["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert chats[1].attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert all(c.attributes["clauditor.request.kind"] == "main" for c in chats)
    assert bash.attributes["gen_ai.tool.call.id"] == detail["requests"][0]["tool_uses"][0]["id"]
    assert chats[0].end_ns <= bash.start_ns <= bash.end_ns == chats[1].start_ns
    assert detail["turns"][0]["trace_id"] == root.trace_id


def test_collector_down_never_touches_traffic(
    fake: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clauditor.netaddr import free_port

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    stack = start_stack(fake.url, tmp_path, "--otlp-endpoint", dead)
    try:

        async def drive() -> object:
            async with ToolTakesTime(stack.proxy_url) as s:
                return await s.turn(f"list the temp dir {BASH}")

        result = asyncio.run(drive())
        assert result.requests == 2 and result.statuses == [200, 200]  # type: ignore[attr-defined]

        def dropped() -> dict[str, int] | None:
            stats: dict[str, int] = stack.get("/api/stats").json()["telemetry"]
            return stats if stats["dropped"] >= 4 else None

        stats = wait_until(dropped, timeout=20)
        assert stats["exported"] == 0
    finally:
        started = time.monotonic()
        assert stack.stop() == 0
    assert time.monotonic() - started < 10


def test_real_claude_code_turn_time_agrees_in_api_and_span(
    claude_cli: Cli, receiver: Receiver, fake: FakeUpstream, tmp_path: Path
) -> None:
    """Issue 14's "done when" on the real CLI: one turn with a slow tool (`sleep 2`) and a
    foreground subagent; the API's turn and its invoke_agent span say where the time went,
    the same way, and the parts add up to the turn."""
    from clauditor.sim.scenarios import AGENT
    from tests.integration.test_claude_code import run_claude

    sleep = '[[fake:tool Bash {"command": "sleep 2", "description": "Wait two seconds"}]]'
    stack = start_stack(fake.url, tmp_path / "stack", "--otlp-endpoint", receiver.endpoint)
    try:
        prompt = f"{AGENT % 'false'} Then wait. {sleep}"
        lines = run_claude(claude_cli, stack.proxy_url, tmp_path / "cc", prompt)
        init = next(x for x in lines if x.get("type") == "system" and x.get("subtype") == "init")
        sid = init["session_id"]

        def root() -> Span | None:
            roots = _roots(_session_spans(receiver.snapshot(), sid))
            return roots[0] if roots else None

        span = wait_until(root, timeout=20)
        (turn,) = stack.session(sid)["turns"]
    finally:
        assert stack.stop() == 0
    time = turn["time"]
    spanned = {
        k.removeprefix("clauditor.turn.time."): v
        for k, v in span.attributes.items()
        if k.startswith("clauditor.turn.time.")
    }
    assert spanned == time
    assert sum(time.values()) == pytest.approx(turn["duration_ms"], abs=0.01)
    # The Bash sleep and the subagent run side by side: together at least the 2 s sleep,
    # counted once; the subagent's own share is its run.
    assert time["subagents_ms"] > 0
    assert 2000.0 <= time["tools_ms"] + time["subagents_ms"] <= 2600.0, time
    (run,) = turn["subagents"]
    assert run["background"] is False and run["requests"] >= 1
    assert run["duration_ms"] >= time["subagents_ms"] - 1.0
