"""Text Python can hold but UTF-8 cannot (a lone UTF-16 surrogate, valid JSON `"\\ud800"`)
in a prompt, through real Envoy and `clauditor up`: it costs nothing but that character.

Before: the writer thread died on it (every later row lost, `write_errors: 0`), and
`/api/sessions` and `/watch` failed to encode the live session.
"""

from __future__ import annotations

import copy
import json
import re
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import fixture_posts, wait_until
from tests.integration.stack import Stack
from tests.integration.test_watch import Collector, watcher

pytestmark = pytest.mark.integration

NORMAL = 20


@pytest.fixture
def collectors() -> Iterator[list[Collector]]:
    made: list[Collector] = []
    yield made
    for c in made:
        c.close()


def _body(prompt: str) -> bytes:
    """The recorded plain-text request with its prompt replaced; json.dumps writes a lone
    surrogate as the escape `\\ud800`, which is valid JSON."""
    body: dict[str, Any] = copy.deepcopy(fixture_posts("a_plain_text")[0]["body"])
    body["messages"][0]["content"][1]["text"] = prompt
    return json.dumps(body).encode()


def _stored(db: Path) -> tuple[int, int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        sessions = conn.execute("select count(*) from sessions").fetchone()[0]
        ended = conn.execute("select count(*) from requests where ended_at is not null")
        return sessions, ended.fetchone()[0]


def test_a_lone_surrogate_in_a_prompt_loses_nothing(
    stack: Stack, collectors: list[Collector]
) -> None:
    record = fixture_posts("a_plain_text")[0]
    live = watcher(stack, collectors)
    bad = str(uuid.uuid4())
    r = stack.post_record(record, session_id=bad, body=_body("look \ud800 here, then say hi"))
    assert r.status_code == 200
    good = [str(uuid.uuid4()) for _ in range(NORMAL)]
    for sid in good:
        assert stack.post_record(record, session_id=sid).status_code == 200

    # Every row lands in SQLite, the bad one with U+FFFD in place of the surrogate.
    wait_until(lambda: _stored(stack.db) == (NORMAL + 1, NORMAL + 1), timeout=15)
    with sqlite3.connect(f"file:{stack.db}?mode=ro", uri=True) as conn:
        (prompt,) = conn.execute(
            "select first_prompt from sessions where session_id = ?", [bad]
        ).fetchone()
    assert prompt == "look \ufffd here, then say hi"

    stats = stack.get("/api/stats").json()["store"]
    assert stats["writer_alive"] is True
    assert stats["write_errors"] == 0
    assert stats["rows_dropped"] == 0
    assert stats["rows_sanitised"] >= 1
    assert stats["writer_restarts"] == 0
    print(f"\nlone surrogate: {_stored(stack.db)} (sessions, requests) stored of 21; store {stats}")

    # The API answers for the live session (held in memory with its surrogate) and lists all.
    listed = stack.get("/api/sessions")
    assert listed.status_code == 200
    assert {s["session_id"] for s in listed.json()["sessions"]} >= {bad, *good}
    detail = stack.get(f"/api/sessions/{bad}")
    assert detail.status_code == 200
    assert detail.json()["session"]["first_prompt"] == "look \ufffd here, then say hi"

    # /watch: the open stream saw every session, and a new subscriber still gets its
    # snapshot (a synthetic session_start per live session, the bad one included).
    live.wait_for(lambda evs: {e.get("session_id") for e in evs} >= {bad, *good}, timeout=10)
    late = watcher(stack, collectors)
    started = late.wait_for(
        lambda evs: any(e["type"] == "session_start" and e["session_id"] == bad for e in evs)
    )
    (snapshot,) = [e for e in started if e["type"] == "session_start" and e["session_id"] == bad]
    assert "\ud800" not in json.dumps(snapshot, ensure_ascii=False)

    # The metrics show the writer's health too.
    metrics = httpx.get(f"{stack.api_url}/metrics", timeout=5, trust_env=False).text
    assert "clauditor_store_writer_alive 1.0" in metrics
    dropped = re.findall(r"^clauditor_store_rows_dropped_total\{.*\} (\S+)$", metrics, re.M)
    assert dropped and all(float(v) == 0 for v in dropped)
    sanitised = re.search(r"^clauditor_store_rows_sanitised_total (\S+)$", metrics, re.M)
    assert sanitised is not None and float(sanitised.group(1)) >= 1


def test_a_lone_surrogate_in_the_model_name_leaves_metrics_readable(stack: Stack) -> None:
    """The model name becomes a metric label: /metrics must still render. (The fake
    upstream cannot answer such a body and resets it; the request is tracked anyway.)"""
    record = fixture_posts("a_plain_text")[0]
    body = json.loads(_body("hi"))
    body["model"] = "claude-opus-4-8\ud800"
    sid = str(uuid.uuid4())
    stack.post_record(record, session_id=sid, body=json.dumps(body).encode())
    wait_until(lambda: stack.get(f"/api/sessions/{sid}").status_code == 200, timeout=10)
    requests = wait_until(lambda: stack.session(sid)["requests"], timeout=10)
    assert requests[0]["model_requested"] == "claude-opus-4-8\ufffd"
    metrics = httpx.get(f"{stack.api_url}/metrics", timeout=5, trust_env=False)
    assert metrics.status_code == 200
    assert "claude-opus-4-8\ufffd" in metrics.text
