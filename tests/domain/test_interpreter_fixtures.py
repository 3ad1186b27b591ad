"""The interpreter on recorded Claude Code exchanges: the domain events it emits, checked
against what Claude Code itself printed for the same run (its stream-json output), not
against the parser's own view of the bytes."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from clauditor.domain.events import (
    DomainEvent,
    ExchangeFinished,
    FirstToken,
    RequestParsed,
    RequestStarted,
    ResponseStarted,
    ToolUseSeen,
)
from clauditor.domain.interpreter import Interpreter
from clauditor.sim.replies import Reply
from clauditor.sim.wire import render_reply
from tests.helpers import body_bytes

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "claude-code-2.1.332"
# Where a body is cut into chunks: whole, a byte at a time at the start, mid-event.
SPLITS = [(), (1, 2, 3), (7,), (64, 65, 200), "every-13"]


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _chunks(body: bytes, split: tuple[int, ...] | str) -> list[bytes]:
    cuts = list(range(13, len(body), 13)) if split == "every-13" else list(split)
    edges = [0, *[c for c in cuts if 0 < c < len(body)], len(body)]
    return [body[a:b] for a, b in itertools.pairwise(edges)]


def _drive(records: list[dict[str, Any]], split: tuple[int, ...] | str) -> list[DomainEvent]:
    events: list[DomainEvent] = []
    interpreter = Interpreter(events.append)
    for ex, record in enumerate(records, 1):
        t = float(ex * 10)
        obs = interpreter.open_exchange(ex, t)
        head = [(":method", "POST"), (":path", "/v1/messages?beta=true")]
        head += [
            (":authority", "api.anthropic.com"),
            *[(k.lower(), v) for k, v in record["headers"]],
        ]
        obs.on_request_headers(head, t, False)
        request = _chunks(body_bytes(record), split)
        for i, chunk in enumerate(request):
            obs.on_request_body(chunk, t, i == len(request) - 1)
        response = record["response"]
        status, ctype, body = render_reply(
            Reply.from_record(response), response["model"], stream=bool(response.get("stream"))
        )
        obs.on_response_headers(
            [
                (":status", str(status)),
                ("content-type", ctype),
                ("request-id", response["request_id"]),
            ],
            t + 1,
            False,
        )
        for chunk in _chunks(body, split):
            obs.on_response_body(chunk, t + 2, False)
        obs.on_response_body(b"", t + 3, True)
        obs.on_close(t + 3, None)
    return events


def _run(name: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    posts = [
        r
        for r in _lines(FIXTURES / f"{name}.jsonl")
        if r["method"] == "POST" and r["path"] == "/v1/messages"
    ]
    return posts, _lines(FIXTURES / f"{name}.stdout.jsonl")


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("name", ["n_plain", "n_tool"])
def test_events_of_a_recorded_run_match_claude_codes_own_account(
    name: str, split: tuple[int, ...] | str
) -> None:
    posts, stdout = _run(name)
    events = _drive(posts, split)
    init = next(m for m in stdout if m["type"] == "system" and m["subtype"] == "init")
    result = next(m for m in stdout if m["type"] == "result")
    said = [b for m in stdout if m["type"] == "assistant" for b in m["message"]["content"]]

    for ex in range(1, len(posts) + 1):
        mine = [e for e in events if e.exchange_id == ex]
        kinds = [type(e) for e in mine]
        # One request, parsed before anything of the response; one first token; one end.
        assert kinds[:3] == [RequestStarted, RequestParsed, ResponseStarted]
        assert kinds.count(FirstToken) == 1 and kinds[-1] is ExchangeFinished
        assert kinds.index(FirstToken) < min(
            [i for i, k in enumerate(kinds) if k is ToolUseSeen], default=len(kinds)
        )
        started, parsed, head = mine[0], mine[1], mine[2]
        assert isinstance(started, RequestStarted) and started.session_hint == init["session_id"]
        assert isinstance(parsed, RequestParsed) and parsed.request.ok
        assert parsed.request.model == init["model"]
        assert parsed.upstream_host == "api.anthropic.com"
        assert isinstance(head, ResponseStarted) and head.status == 200
        assert head.request_id == posts[ex - 1]["response"]["request_id"]

    finished = [e for e in events if isinstance(e, ExchangeFinished)]
    assert all(
        f.error_type is None and f.result.complete and f.observed == "full" for f in finished
    )
    assert {f.result.model for f in finished} == {init["model"]}
    # The tools the model called, as Claude Code ran them.
    seen = [(e.tool_use.id, e.tool_use.name) for e in events if isinstance(e, ToolUseSeen)]
    assert seen == [(b["id"], b["name"]) for b in said if b["type"] == "tool_use"]
    # Claude Code's result sums the usage of every request of the run.
    usage = result["usage"]
    total = {
        "input_tokens": sum(f.result.usage.input_tokens for f in finished),
        "output_tokens": sum(f.result.usage.output_tokens for f in finished),
        "cache_read_input_tokens": sum(f.result.usage.cache_read_input_tokens for f in finished),
        "cache_creation_input_tokens": sum(
            f.result.usage.cache_creation_input_tokens for f in finished
        ),
    }
    assert total == {k: usage[k] for k in total}
