"""The oracle: what Claude Code itself says a session was, independent of clauditor.

- `from_stream_json(runs)`: the stream-json lines of each `claude -p` run of one session
  (`--output-format stream-json --verbose`): `system/init` (session id, version, model),
  `result` (`modelUsage`, `total_cost_usd`, `num_turns`), `task_started` (a subagent's task
  id → the Agent tool_use id), `api_retry`, `model_fallback`, `compact_boundary`.
- `from_project_state(state)`: what an interactive session leaves in ~/.claude.json
  (`lastSessionId`, `lastModelUsage`, `lastCost`).
- `from_records(records, prices)`: hand-computed from the fake's responses and a price table
  the test writes down from docs/anthropic-api.md (for a capture without stream-json).
- `wire_of(records, session_id)`: the requests on the wire (fixture lines, or the fake's
  exchanges turned into them): which were billed, which failed, each one's kind by the
  documented tell-tales.

Accounting differs by version. 2.1.197 reports each run alone (the last `result` of a run
covers that process); 2.1.332 reports `--continue`/`--resume` runs cumulatively over the
session and adds `model_usage_since_last_result` (what this result adds). The oracle sums
the deltas when they are there and checks them against the cumulative figure, else sums the
runs. `modelUsage` never counts a 529. Whether it counts the usage a stream cut by an SSE
error reported in `message_start` depends on the version and on how Claude Code resent it
(seen with the real CLIs, see `counted_by_claude_code`).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COMPACT_MARKER = "CRITICAL: Respond with TEXT ONLY"
_TAG = re.compile(r"\[[^\]]*\]$")  # claude-opus-4-8[1m] → claude-opus-4-8
TOKEN_FIELDS = ("input", "output", "cache_read", "cache_creation")
# Versions whose accounting counts an aborted stream's message_start usage when Claude Code
# resends it streaming (the SSE error came before any content block). Seen: 2.1.197 does;
# after a content block it resends non-streaming and counts only the resend. 2.1.332 never
# counts an aborted stream (claude-code-wire-2.1.332.md). Unlisted versions: like the newest.
ABORTED_COUNTED_WHEN_RESENT_STREAMING = frozenset({"2.1.197"})


def counted_by_claude_code(version: str | None, request: WireRequest) -> bool:
    """Does Claude Code's own accounting (modelUsage, total_cost_usd) count this request?"""
    if request.complete:
        return True
    return (
        request.aborted
        and request.resent_streaming
        and (version or "") in ABORTED_COUNTED_WHEN_RESENT_STREAMING
    )


class TruthError(AssertionError):
    """The oracle disagrees with itself (e.g. two session ids in one scenario)."""


def norm_model(model: str | None) -> str:
    return _TAG.sub("", model or "")


@dataclass
class ModelTruth:
    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_creation: int = 0
    cost_usd: float = 0.0
    context_window: int | None = None

    @classmethod
    def of(cls, usage: dict[str, Any]) -> ModelTruth:
        """From a modelUsage entry (camelCase, as Claude Code prints it)."""
        return cls(
            int(usage.get("inputTokens") or 0),
            int(usage.get("outputTokens") or 0),
            int(usage.get("cacheReadInputTokens") or 0),
            int(usage.get("cacheCreationInputTokens") or 0),
            float(usage.get("costUSD") or 0.0),
            usage.get("contextWindow"),
        )

    def add(self, other: ModelTruth) -> None:
        for f in TOKEN_FIELDS:
            setattr(self, f, getattr(self, f) + getattr(other, f))
        self.cost_usd += other.cost_usd
        self.context_window = other.context_window or self.context_window

    def tokens(self) -> dict[str, int]:
        return {f: getattr(self, f) for f in TOKEN_FIELDS}


def _add_usage(into: dict[str, ModelTruth], usage: dict[str, Any] | None) -> None:
    for model, u in (usage or {}).items():
        if isinstance(u, dict):
            into.setdefault(norm_model(model), ModelTruth()).add(ModelTruth.of(u))


@dataclass
class Truth:
    source: str
    session_id: str
    version: str | None = None
    models: dict[str, ModelTruth] = field(default_factory=dict)  # normalised model → totals
    total_cost_usd: float = 0.0
    context_window: int | None = None  # of the model the session ended on
    final_model: str | None = None
    runs: int = 0
    results: int = 0
    cumulative: bool = False
    tool_uses: Counter[str] = field(default_factory=Counter)  # main thread and subagents
    tasks: dict[str, str] = field(default_factory=dict)  # subagent task id → Agent tool_use id
    subagent_parents: set[str] = field(default_factory=set)  # parent_tool_use_id of messages
    compact_boundaries: int = 0
    api_retries: int = 0
    model_fallbacks: list[tuple[str, str]] = field(default_factory=list)


def read_stream_json(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def from_stream_json(runs: Sequence[Sequence[dict[str, Any]]]) -> Truth:
    """The truth of one session from the stream-json of its runs, in order."""
    inits = [e for run in runs for e in run if e.get("subtype") == "init"]
    ids = {e.get("session_id") for e in inits}
    if len(ids) != 1:
        raise TruthError(f"expected one session id across the runs, got {ids}")
    versions = {e.get("claude_code_version") for e in inits}
    version = next(iter(versions)) if len(versions) == 1 else None
    truth = Truth("stream-json", str(ids.pop()), version)
    truth.runs = len(runs)
    results = [[e for e in run if e.get("type") == "result"] for run in runs]
    truth.results = sum(len(r) for r in results)
    if any(not r for r in results):
        raise TruthError("a run printed no result event")
    flat = [r for run in results for r in run]
    truth.cumulative = any("model_usage_since_last_result" in r for r in flat)
    if truth.cumulative:
        for r in flat:
            _add_usage(truth.models, r.get("model_usage_since_last_result"))
        last = flat[-1]
        whole: dict[str, ModelTruth] = {}
        _add_usage(whole, last.get("modelUsage"))
        if {m: t.tokens() for m, t in whole.items() if any(t.tokens().values())} != {
            m: t.tokens() for m, t in truth.models.items() if any(t.tokens().values())
        }:
            raise TruthError(f"deltas {truth.models} do not add up to modelUsage {whole}")
        truth.total_cost_usd = float(last["total_cost_usd"])
        summed = sum(t.cost_usd for t in truth.models.values())
        if not math.isclose(summed, truth.total_cost_usd, rel_tol=1e-6, abs_tol=1e-9):
            raise TruthError(f"deltas cost {summed} != total_cost_usd {truth.total_cost_usd}")
        for m, t in whole.items():  # the window is only on the cumulative entries
            if m in truth.models:
                truth.models[m].context_window = t.context_window
    else:
        for run in results:
            _add_usage(truth.models, run[-1].get("modelUsage"))
            truth.total_cost_usd += float(run[-1]["total_cost_usd"])
    # The model the session ended on: the newest main-thread assistant message.
    for run in runs:
        for e in run:
            if e.get("type") == "assistant" and e.get("parent_tool_use_id") is None:
                model = norm_model((e.get("message") or {}).get("model"))
                if model and model != "<synthetic>":
                    truth.final_model = model
    last_usage: dict[str, ModelTruth] = {}
    _add_usage(last_usage, flat[-1].get("modelUsage"))
    if truth.final_model in last_usage:
        truth.context_window = last_usage[truth.final_model].context_window
    seen: set[str] = set()
    for run in runs:
        for e in run:
            typ, sub = e.get("type"), e.get("subtype")
            if typ == "assistant":
                if e.get("parent_tool_use_id"):
                    truth.subagent_parents.add(e["parent_tool_use_id"])
                for block in (e.get("message") or {}).get("content") or []:
                    if block.get("type") == "tool_use" and block.get("id") not in seen:
                        seen.add(block["id"])
                        truth.tool_uses[block.get("name")] += 1
            elif typ == "system" and sub == "task_started":
                truth.tasks[e.get("task_id")] = e.get("tool_use_id")
            elif typ == "system" and sub == "compact_boundary":
                truth.compact_boundaries += 1
            elif typ == "system" and sub == "api_retry":
                truth.api_retries += 1
            elif typ == "system" and sub == "model_fallback":
                truth.model_fallbacks.append((e.get("original_model"), e.get("fallback_model")))
    return truth


def from_stream_json_files(paths: Iterable[Path]) -> Truth:
    return from_stream_json([read_stream_json(p) for p in paths])


def from_project_state(state: dict[str, Any], version: str | None = None) -> Truth:
    """An interactive session's own accounting, written to ~/.claude.json when it exits."""
    sid = state.get("lastSessionId")
    if not isinstance(sid, str):
        raise TruthError(f"no lastSessionId in {sorted(state)}")
    truth = Truth("project-state", sid, version, runs=1, results=1)
    _add_usage(truth.models, state.get("lastModelUsage"))
    truth.total_cost_usd = float(state.get("lastCost") or 0.0)
    if len(truth.models) == 1:
        truth.final_model = next(iter(truth.models))
    return truth


# ---------------------------------------------------------------- the wire


def _headers(record: dict[str, Any]) -> dict[str, str]:
    return {k.lower(): v for k, v in record.get("headers") or []}


def _body(record: dict[str, Any]) -> dict[str, Any]:
    body = record.get("body")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return {}
    return body if isinstance(body, dict) else {}


def session_of(record: dict[str, Any]) -> str | None:
    sid = _headers(record).get("x-claude-code-session-id")
    if sid:
        return sid
    user_id = (_body(record).get("metadata") or {}).get("user_id")
    try:
        return json.loads(user_id).get("session_id") if isinstance(user_id, str) else None
    except (ValueError, AttributeError):
        return None


def _newest_user_text(body: dict[str, Any]) -> str:
    for m in reversed(body.get("messages") or []):
        if isinstance(m, dict) and m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, str):
                return content
            return "\n".join(str(b.get("text", "")) for b in content or [] if isinstance(b, dict))
    return ""


def kind_of(record: dict[str, Any]) -> str:
    """A request's kind by the tell-tales of claude-code-wire*.md."""
    body = _body(record)
    if _headers(record).get("x-claude-code-agent-id"):
        return "subagent"
    fmt = (body.get("output_config") or {}).get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and not body.get("tools"):
        return "title"
    if COMPACT_MARKER in _newest_user_text(body):
        return "compaction"
    return "main"


@dataclass
class WireRequest:
    request_id: str | None
    kind: str
    model: str
    complete: bool  # a whole 200 message
    status: int
    response_kind: str | None
    agent_id: str | None
    usage: dict[str, Any]
    stream: bool = True
    resent_streaming: bool = False  # aborted, and the next request of its thread streams

    @property
    def aborted(self) -> bool:
        """A 200 stream cut short (SSE error, truncated): it reported some usage."""
        return self.status == 200 and not self.complete


@dataclass
class Wire:
    session_id: str
    requests: list[WireRequest]

    def counted(self, version: str | None) -> list[WireRequest]:
        """The requests whose usage Claude Code's own accounting counts (version rules)."""
        return [r for r in self.requests if counted_by_claude_code(version, r)]

    @property
    def failed(self) -> list[WireRequest]:
        """Not a usable message (529, SSE error...): Claude Code resends each."""
        return [r for r in self.requests if not r.complete]


def wire_of(records: Iterable[dict[str, Any]], session_id: str) -> Wire:
    out = []
    for r in records:
        if r.get("method") != "POST" or not str(r.get("path", "")).startswith("/v1/messages"):
            continue
        if session_of(r) != session_id:
            continue
        resp = r.get("response") or {}
        status = int(resp.get("status") or 0)
        complete = status == 200 and resp.get("kind") not in ("sse_error", "truncated", "error")
        out.append(
            WireRequest(
                resp.get("request_id"),
                kind_of(r),
                norm_model(_body(r).get("model")),
                complete,
                status,
                resp.get("kind"),
                _headers(r).get("x-claude-code-agent-id"),
                resp.get("usage") or {},
                _body(r).get("stream") is True,
            )
        )
    for i, req in enumerate(out):
        if req.aborted:
            nxt = next((o for o in out[i + 1 :] if o.agent_id == req.agent_id), None)
            req.resent_streaming = nxt is not None and nxt.stream
    return Wire(session_id, out)


def from_records(
    records: Iterable[dict[str, Any]],
    session_id: str,
    prices: dict[str, dict[str, float]],
    version: str | None = None,
) -> Truth:
    """Hand-computed: the billed responses' usage times prices (USD per MTok: input, output,
    cache_write_5m, cache_write_1h, cache_read), as the test copies them from the docs."""
    truth = Truth("hand-computed", session_id, version, runs=1, results=1)
    for req in wire_of(records, session_id).counted(version):
        u, p = req.usage, prices[req.model]
        split = u.get("cache_creation") or {}
        w1h = int(split.get("ephemeral_1h_input_tokens") or 0)
        w5m = int(u.get("cache_creation_input_tokens") or 0) - w1h
        t = ModelTruth(
            int(u.get("input_tokens") or 0),
            int(u.get("output_tokens") or 0),
            int(u.get("cache_read_input_tokens") or 0),
            int(u.get("cache_creation_input_tokens") or 0),
        )
        t.cost_usd = (
            t.input * p["input"]
            + t.output * p["output"]
            + w5m * p["cache_write_5m"]
            + w1h * p["cache_write_1h"]
            + t.cache_read * p["cache_read"]
        ) / 1e6
        truth.models.setdefault(req.model, ModelTruth()).add(t)
        truth.final_model = req.model if req.kind == "main" else truth.final_model
    truth.total_cost_usd = sum(t.cost_usd for t in truth.models.values())
    return truth
