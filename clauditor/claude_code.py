"""Claude Code's conventions, in one place: markers, header and tool names, version facts.

Everything clauditor infers about Claude Code (what a turn is, which request is a
subagent's, a compaction, a task notification) rests on the strings below, learned from
the real CLI of each verified version (docs/compatibility.md). The wire vocabulary those
versions use (betas, body keys, headers, SSE events, block types) is data, in
clauditor/data/claude_code.json: anything outside it is drift, and marks a session
unverified instead of being trusted.

A leaf module: no clauditor imports, so every layer may read it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

# -- headers ---------------------------------------------------------------------------------
SESSION_HEADER = "x-claude-code-session-id"
AGENT_HEADER = "x-claude-code-agent-id"  # every request of a subagent run: its task id
HEADER_PREFIX = "x-claude-code-"

# -- system prompt -----------------------------------------------------------------------------
BILLING_PREFIX = "x-anthropic-billing-header:"
SUBAGENT_BILLING_FLAG = "cc_is_subagent=true"
SUBAGENT_MARKER = "You are an agent for Claude Code"

# -- user messages Claude Code writes itself ---------------------------------------------------
COMPACT_PREFIX = "CRITICAL: Respond with TEXT ONLY"  # the compaction instruction
# The first user message of the conversation that follows a compaction.
CONTINUATION_PREFIX = "This session is being continued from a previous conversation"
# The echo of a typed /compact, in the message that follows it: a manual compaction.
COMPACT_COMMAND = "<command-name>/compact</command-name>"
COMMAND_NAME_TAG = "<command-name>"
# 2.1.332: the text block that comes with a ToolSearch result, beside the tool_result.
TOOL_LOADED_TEXT = "Tool loaded."
# 2.1.332: a background task finished; the message is Claude Code's, not the user's.
NOTIFICATION_MARKER = "[SYSTEM NOTIFICATION - NOT USER INPUT]"
TASK_NOTIFICATION_OPEN = "<task-notification>"
TASK_NOTIFICATION_CLOSE = "</task-notification>"
_NOTIFICATION_FIELD = re.compile(r"<(task-id|tool-use-id|status)>\s*([^<\s]{1,128})\s*</\1>")
# The launch acknowledgement of a background Agent call (its tool_result).
AGENT_LAUNCHED_PREFIX = "Async agent launched"
_AGENT_ID = re.compile(r"agentId:\s*([A-Za-z0-9_-]{4,64})")

# -- tools -------------------------------------------------------------------------------------
# The subagent tool: "Agent" on the wire (stream-json and older versions call it "Task").
AGENT_TOOLS = frozenset({"Agent", "Task"})
FILE_TOOLS = frozenset({"Read", "Edit", "MultiEdit", "Write", "NotebookEdit", "NotebookRead"})
# The tools whose input summary recall indexes as a path a session touched (the store's
# SQL binds them in this order).
PATH_TOOLS = ("Read", "Edit", "Write", "MultiEdit", "NotebookEdit")
BASH_TOOL = "Bash"
SEARCH_TOOLS = frozenset({"Grep", "Glob"})  # input: a pattern and a path
WEB_FETCH_TOOL = "WebFetch"
WEB_SEARCH_TOOL = "WebSearch"

_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


def agent_id_in(text: str) -> str | None:
    """The subagent id an Agent tool_result names (`agentId: a1b2...`), if any."""
    m = _AGENT_ID.search(text)
    return m.group(1) if m else None


@dataclass(frozen=True, slots=True)
class TaskNotification:
    task_id: str | None  # the subagent's id, as in x-claude-code-agent-id
    tool_use_id: str | None  # the Agent call that launched it
    status: str | None  # completed, failed, killed...


def task_notifications(text: str, limit: int = 16) -> list[TaskNotification]:
    """Every <task-notification> in a message text, with the ids it carries."""
    out: list[TaskNotification] = []
    start = text.find(TASK_NOTIFICATION_OPEN)
    while start >= 0 and len(out) < limit:
        end = text.find(TASK_NOTIFICATION_CLOSE, start)
        body = text[start : end if end >= 0 else start + 4096]
        fields = dict(_NOTIFICATION_FIELD.findall(body))
        out.append(
            TaskNotification(fields.get("task-id"), fields.get("tool-use-id"), fields.get("status"))
        )
        if end < 0:
            break
        start = text.find(TASK_NOTIFICATION_OPEN, end)
    return out


def version_key(version: str) -> tuple[int, int, int] | None:
    m = _VERSION.match(version)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


@dataclass(frozen=True, slots=True)
class WireVocabulary:
    """What the verified versions send and receive (clauditor/data/claude_code.json)."""

    verified_versions: tuple[str, ...]
    betas: frozenset[str]
    body_keys: frozenset[str]
    headers: frozenset[str]
    sse_events: frozenset[str]
    content_blocks: frozenset[str]
    # Versions whose own accounting counts the usage of a stream that failed before any
    # content block (2.1.197 resends it streaming and counts both attempts).
    aborted_before_content_counted: frozenset[str] = frozenset()

    @property
    def newest_verified(self) -> str:
        return max(self.verified_versions, key=lambda v: version_key(v) or (0, 0, 0))


@lru_cache(maxsize=1)
def vocabulary() -> WireVocabulary:
    text = resources.files("clauditor").joinpath("data/claude_code.json").read_text("utf-8")
    data = json.loads(text)
    return WireVocabulary(
        verified_versions=tuple(data["verified_versions"]),
        betas=frozenset(data["betas"]),
        body_keys=frozenset(data["body_keys"]),
        headers=frozenset(data["headers"]),
        sse_events=frozenset(data["sse_events"]),
        content_blocks=frozenset(data["content_blocks"]),
        aborted_before_content_counted=frozenset(
            data.get("accounting", {}).get("aborted_before_content_counted", [])
        ),
    )


# -- the status line's input (docs/statusline.md) ----------------------------------------------
# Claude Code pipes a JSON object to its `statusLine` command after each message. Besides paths
# and ids it holds Claude Code's own accounting, which `clauditor statusline` forwards to the
# core (cost, context_window, rate_limits, prompt_cache, model, version): the numbers below.
_TTL = re.compile(r"^(\d{1,6})([smh])$")
_TTL_UNIT = {"s": 1, "m": 60, "h": 3600}
_TEXT_MAX = 100  # a model id or a version: short, or not what it claims to be


def _number(value: Any) -> float | None:
    # bool is an int in Python, never a number in this payload; NaN and inf are no accounting.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if value == value and abs(value) != float("inf") else None


def _count(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number >= 0 and number == int(number) else None


def _object(parent: Any, key: str) -> dict[str, Any]:
    value = parent.get(key) if isinstance(parent, dict) else None
    return value if isinstance(value, dict) else {}


def _short_text(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= _TEXT_MAX else None


def ttl_seconds(value: Any) -> int | None:
    """prompt_cache.ttl ("5m", "1h") in seconds."""
    m = _TTL.match(value) if isinstance(value, str) else None
    return int(m.group(1)) * _TTL_UNIT[m.group(2)] if m else None


def statusline_numbers(payload: Any) -> dict[str, Any]:
    """Claude Code's own accounting in a status-line payload (2.1.332), flat: every key
    present, None when the payload lacks it (rate_limits only come with a claude.ai
    subscription, prompt_cache and current_usage after the first response). Timestamps
    are epoch seconds, percentages 0-100, as Claude Code writes them."""
    cost = _object(payload, "cost")
    window = _object(payload, "context_window")
    usage = _object(window, "current_usage")
    limits = _object(payload, "rate_limits")
    five, seven = _object(limits, "five_hour"), _object(limits, "seven_day")
    cache = _object(payload, "prompt_cache")
    parts = [
        _count(usage.get(k))
        for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    ]
    warm = cache.get("warm")
    return {
        "cost_usd": _number(cost.get("total_cost_usd")),
        "duration_ms": _number(cost.get("total_duration_ms")),
        "api_duration_ms": _number(cost.get("total_api_duration_ms")),
        # What the newest response put in the window: input + cache write + cache read.
        "context_tokens": sum(p for p in parts if p is not None) if usage else None,
        "context_window_tokens": _count(window.get("context_window_size")),
        "context_used_pct": _number(window.get("used_percentage")),
        "rate_limit_5h_pct": _number(five.get("used_percentage")),
        "rate_limit_5h_resets_at": _number(five.get("resets_at")),
        "rate_limit_7d_pct": _number(seven.get("used_percentage")),
        "rate_limit_7d_resets_at": _number(seven.get("resets_at")),
        "cache_warm": warm if isinstance(warm, bool) else None,
        "cache_ttl_seconds": ttl_seconds(cache.get("ttl")),
        "cache_expires_at": _number(cache.get("expires_at")),
        "cache_hit_ratio": _number(cache.get("hit_ratio")),
        "cache_requests": _count(cache.get("requests")),
        "cache_misses": _count(cache.get("misses")),
        "model": _short_text(_object(payload, "model").get("id")),
        "version": _short_text(payload.get("version") if isinstance(payload, dict) else None),
    }
