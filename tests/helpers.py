"""Shared test helpers: bounded waits, free ports, fixture loading."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

FIXTURES = Path(__file__).parent / "fixtures"
T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.05) -> T:
    """Poll until predicate returns something truthy; bounded in time, raises on timeout."""
    deadline = time.monotonic() + timeout
    last: T = predicate()
    while not last:
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s (last value {last!r})")
        time.sleep(interval)
        last = predicate()
    return last


def load_fixture(name: str) -> list[dict[str, Any]]:
    with (FIXTURES / f"{name}.jsonl").open() as fh:
        return [json.loads(line) for line in fh if line.strip()]


def fixture_posts(name: str) -> list[dict[str, Any]]:
    return [r for r in load_fixture(name) if r["method"] == "POST"]


def headers_of(record: dict[str, Any]) -> dict[str, str]:
    return {k.lower(): v for k, v in record["headers"]}


def body_bytes(record: dict[str, Any]) -> bytes:
    body = record["body"]
    return body.encode() if isinstance(body, str) else json.dumps(body).encode()


# Recorded runs that cover every kind of session object between them (tool calls,
# foreground and background subagents, compaction, 529 retries, a model fallback, a
# stream error, a resumed session, deferred tools), for tests that run them all.
RECORDED_SESSIONS = [
    "b_tool_bash",
    "e_subagent",
    "e_compact",
    "f_529_retry",
    "d_continue_resume",
    *(
        f"claude-code-2.1.332/{name}"
        for name in (
            "n_tool",
            "n_subagent",
            "n_subagent_bg",
            "n_compact",
            "n_retry_529",
            "n_fallback_model",
            "n_sse_error",
            "n_toolsearch",
        )
    ),
]
