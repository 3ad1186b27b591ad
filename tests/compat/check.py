"""Compare what clauditor reports for a session (`GET /api/sessions/{id}`, or the same
shape built in-process) against the oracle (tests/compat/truth.py), collecting every
mismatch as "field: expected X, got Y" so one failing scenario reports all its drift."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tests.compat.truth import TOKEN_FIELDS, Truth, Wire, norm_model

COST_TOLERANCE = 0.005  # 0.5 %
_API_TOKENS = {
    "input": "input_tokens",
    "output": "output_tokens",
    "cache_read": "cache_read_tokens",
    "cache_creation": "cache_creation_tokens",
}


@dataclass
class Expect:
    """What the scenario itself fixes (not read from Claude Code's output)."""

    version: str
    prompts: int  # typed by the user (not counting a /compact) = `turns`
    compactions: int = 0  # /compact runs
    prompt_texts: list[str | None] | None = None  # in order; None for a /compact
    context_window: int | None = None  # when the truth has none (interactive)


@dataclass
class Report:
    mismatches: list[str] = field(default_factory=list)

    def eq(self, what: str, expected: Any, got: Any) -> None:
        if expected != got:
            self.mismatches.append(f"{what}: expected {expected!r}, got {got!r}")

    def fail(self, what: str) -> None:
        self.mismatches.append(what)

    def __bool__(self) -> bool:
        return bool(self.mismatches)

    def text(self, title: str) -> str:
        return title + "\n  " + "\n  ".join(self.mismatches)


def compare(detail: dict[str, Any], truth: Truth, wire: Wire, expect: Expect) -> Report:
    rep = Report()
    s = detail.get("session") or {}
    rep.eq("session_id", truth.session_id, s.get("session_id"))
    rep.eq("claude_code_version", expect.version, s.get("claude_code_version"))
    if truth.version is not None:
        rep.eq("claude_code_version (init)", truth.version, s.get("claude_code_version"))
    rep.eq("verified", True, s.get("verified"))
    rep.eq("unverified_reasons", [], s.get("unverified_reasons"))

    # Turns. `turns` counts the prompts typed (a /compact is a command, not a prompt);
    # `turns_all` every turn, i.e. also a /compact and Claude Code answering a background
    # task's notification on its own: one stream-json `result` each.
    rep.eq("turns", expect.prompts, s.get("turns"))
    all_turns = truth.results if truth.source == "stream-json" else None
    rep.eq("turns_all", all_turns or expect.prompts + expect.compactions, s.get("turns_all"))
    turns = detail.get("turns") or []
    rep.eq("turn outcomes", ["completed"] * len(turns), [t.get("outcome") for t in turns])
    prompted = [
        t for t in turns if t.get("trigger", "prompt") == "prompt" and not t.get("compaction")
    ]
    typed = [p.split("[[fake:")[0].strip() for p in expect.prompt_texts or [] if p is not None]
    got_prompts = [t.get("prompt") for t in prompted]
    matching = len(got_prompts) == len(typed) and all(
        isinstance(g, str) and g.startswith(w) for w, g in zip(typed, got_prompts, strict=True)
    )
    if expect.prompt_texts is not None and not matching:
        short = [g[:60] if isinstance(g, str) else g for g in got_prompts]
        rep.fail(f"prompts of the prompt turns: expected {typed} (as prefixes), got {short}")
    compaction_turns = [t for t in turns if t.get("trigger") == "compaction" or t.get("compaction")]
    rep.eq("compaction turns", expect.compactions, len(compaction_turns))

    # Requests: every POST of the session, each of the kind its tell-tales say.
    rep.eq("requests", len(wire.requests), s.get("requests"))
    by_id = {r.get("request_id"): r for r in detail.get("requests") or []}
    kinds_expected = Counter(r.kind for r in wire.requests)
    kinds_got = Counter(r.get("kind") for r in detail.get("requests") or [])
    rep.eq("request kinds", dict(kinds_expected), dict(kinds_got))
    for w in wire.requests:
        got = by_id.get(w.request_id)
        if got is None:
            rep.fail(f"request {w.request_id} ({w.kind}, {w.status}) missing from the detail")
            continue
        if got.get("kind") != w.kind:
            rep.fail(f"request {w.request_id}: kind expected {w.kind!r}, got {got.get('kind')!r}")
        if w.agent_id:
            want = truth.tasks.get(w.agent_id)
            if want is None and truth.source == "stream-json":
                rep.fail(f"oracle: no task_started for agent {w.agent_id}")
            elif want is not None and got.get("parent_tool_use_id") != want:
                rep.fail(
                    f"subagent request {w.request_id} (agent {w.agent_id}): parent_tool_use_id "
                    f"expected {want!r}, got {got.get('parent_tool_use_id')!r}"
                )

    # Failed exchanges (529, SSE error) are each resent by Claude Code.
    rep.eq("retries", len(wire.failed), s.get("retries"))
    rep.eq("errors", len(wire.failed), s.get("errors"))
    rep.eq("fallbacks", len(truth.model_fallbacks), s.get("fallbacks"))

    # Tools: the tool_use blocks Claude Code printed.
    rep.eq("tools", dict(truth.tool_uses), s.get("tools"))
    rep.eq("tool_calls", sum(truth.tool_uses.values()), s.get("tool_calls"))

    # Tokens per model over the requests Claude Code's accounting counts, vs its modelUsage.
    per_model: dict[str, dict[str, int]] = {}
    for w in wire.counted(expect.version):
        got = by_id.get(w.request_id)
        if got is None:
            continue
        model = norm_model(got.get("model_requested")) or w.model
        acc = per_model.setdefault(model, dict.fromkeys(TOKEN_FIELDS, 0))
        for f in TOKEN_FIELDS:
            acc[f] += int(got.get(_API_TOKENS[f]) or 0)
    want_models = {m: t.tokens() for m, t in truth.models.items() if any(t.tokens().values())}
    rep.eq("tokens per model (counted requests)", want_models, per_model)

    cost = s.get("estimated_cost_usd")
    want_cost = truth.total_cost_usd
    if not isinstance(cost, (int, float)):
        rep.fail(f"estimated_cost_usd: expected {want_cost:.6f}, got {cost!r}")
    elif abs(cost - want_cost) > COST_TOLERANCE * want_cost:
        off = (cost - want_cost) / want_cost * 100 if want_cost else float("inf")
        rep.fail(
            f"estimated_cost_usd: expected {want_cost:.6f} (within 0.5 %), "
            f"got {cost:.6f} ({off:+.2f} %)"
        )

    window = truth.context_window or expect.context_window
    if window is not None:
        rep.eq("context_window_tokens", window, s.get("context_window_tokens"))

    if truth.source == "stream-json":  # the scenario and Claude Code agree first
        rep.eq("compact_boundary events", expect.compactions, truth.compact_boundaries)
    rep.eq("compactions", expect.compactions, s.get("compactions"))
    return rep
