"""Secrets a user pastes never leave clauditor: through real Envoy, the real core and real
SQLite, a corpus of fake secrets of every kind is pasted into prompts, tool inputs (Bash
commands, Grep patterns, URLs, paths, an MCP tool, an Agent description) and model
replies; then the database file and its WAL, the whole log, every exported span (with
message content capture on), every /watch event, /metrics and every API answer are
searched for any piece of any secret. There must be none: each shows as
`[redacted:kind]` instead.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from clauditor.sim.claude import SyntheticSession
from clauditor.sim.replies import Reply
from clauditor.sim.server import FakeUpstream
from tests.helpers import wait_until
from tests.integration.otlp_receiver import Receiver, otlp_receiver
from tests.integration.reliability import WatchRecorder, otlp_env, wait_settled
from tests.integration.stack import start_stack
from tests.secrets_corpus import URLSAFE, Secret, body, corpus

pytestmark = pytest.mark.integration

CORPUS = corpus()
PARALLEL = 6
PROMPT_CUTS = range(470, 500, 6)
TURNS = 2 * len(CORPUS) + len(PROMPT_CUTS) + 2
URL_SAFE = re.compile(r"[\w.~-]+")


def _directive(name: str, tool_input: dict[str, object]) -> str:
    return f"[[fake:tool {name} {json.dumps(tool_input)}]]"


def _tool_for(i: int, s: Secret) -> tuple[str, dict[str, object]]:
    """A tool call carrying the secret, in turn: each tool summary path is exercised."""
    first = s.text.splitlines()[0] if "-----BEGIN" not in s.text else s.text
    choices: list[tuple[str, dict[str, object]]] = [
        ("Bash", {"command": s.text, "description": "run it"}),
        ("Bash", {"command": f"echo start && {first}"}),
        ("Grep", {"pattern": s.secret if s.shaped else s.text, "path": "src"}),
        ("WebSearch", {"query": s.text}),
        ("WebFetch", {"url": _url_with(s)}),
        ("Read", {"file_path": f"/tmp/cache/{s.text}"}),
        ("mcp__vault__store", {"name": "prod", "value": s.text}),
        ("Agent", {"description": f"check {s.text}", "prompt": f"look at {s.text}",
                   "subagent_type": "general-purpose"}),
    ]  # fmt: skip
    return choices[i % len(choices)]


def _url_with(s: Secret) -> str:
    if s.text.startswith(("https://", "clone https://")):
        return s.text.split()[-1]  # user:password@host
    if s.shaped and URL_SAFE.fullmatch(s.secret):
        return f"https://example.com/v1/{s.secret}/x?k=1"  # a token in the path
    return f"https://example.com/v1/x?access_token={quote(s.secret, safe='')}"  # a query


def _long_prompt_key() -> str:
    return "sk-" + "ant-" + "api03-" + body("it-long-prompt", 90, URLSAFE)


def _long_reply_key() -> str:
    return "sk-" + "ant-" + "api03-" + body("it-long-reply", 90, URLSAFE)


def _extra_secrets() -> list[Secret]:
    """The two cut cases: a key across the prompt's 500-char cap, one across the reply's
    4000-char tail."""
    k1, k2 = _long_prompt_key(), _long_reply_key()
    return [
        Secret("anthropic_key", k1, k1, k1[len("sk-ant-api03-") :]),
        Secret("anthropic_key", k2, k2, k2[len("sk-ant-api03-") :]),
    ]


async def _one(url: str, fake: FakeUpstream, i: int, s: Secret) -> str:
    async with SyntheticSession(url) as sess:
        name, tool_input = _tool_for(i, s)
        await sess.turn(f"Secret test {i}: {s.text} {_directive(name, tool_input)}")
        # The model echoes the secret in its reply: the session's summary comes from it.
        fake.script(sess.session_id, [Reply(text=f"Done. I used {s.text} as you asked.")])
        await sess.turn(f"thanks, and again: {s.text}")
        return sess.session_id


async def _cut_cases(url: str, fake: FakeUpstream) -> list[str]:
    ids = []
    async with SyntheticSession(url) as sess:
        for lead in PROMPT_CUTS:
            await sess.turn("w" * lead + " " + _long_prompt_key() + " and some more words")
        ids.append(sess.session_id)
    async with SyntheticSession(url) as sess:
        await sess.turn("write me a long story")
        # The reply's kept tail (its last 4000 chars) opens 50 chars into the key.
        key = _long_reply_key()
        trail = ("end " * 1000)[: 4000 - 1 - (len(key) - 50)]
        reply = "word " * 7000 + key + " " + trail
        fake.script(sess.session_id, [Reply(text=reply)])
        await sess.turn("and a long one")
        ids.append(sess.session_id)
    return ids


async def _drive(url: str, fake: FakeUpstream) -> list[str]:
    gate = asyncio.Semaphore(PARALLEL)

    async def guarded(i: int, s: Secret) -> str:
        async with gate:
            return await _one(url, fake, i, s)

    ids = await asyncio.gather(*(guarded(i, s) for i, s in enumerate(CORPUS)))
    return [*ids, *await _cut_cases(url, fake)]


def _settled(detail: dict[str, Any]) -> bool:
    s = detail.get("session") or detail
    return s.get("in_flight") == 0 and bool(s.get("last_text"))


def _hits(where: str, data: bytes, secrets: list[Secret], found: Counter[str]) -> None:
    low = data.lower()  # FTS5 keeps its terms lowercased
    for s in secrets:
        for needle in s.needles():
            if needle.lower().encode() in low:
                found[f"{where}: {s.kind}"] += 1


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    # Content capture on: prompts and replies go into spans too, so they are checked too.
    otlp_env(monkeypatch, OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="true")
    with otlp_receiver() as r:
        yield r


def test_pasted_secrets_are_nowhere(receiver: Receiver, fake: FakeUpstream, tmp_path: Path) -> None:
    stack = start_stack(
        fake.url, tmp_path, "--otlp-endpoint", receiver.endpoint, "--log-level", "debug"
    )
    watch = WatchRecorder(stack.api_url).start()
    api: dict[str, bytes] = {}
    try:
        ids = asyncio.run(asyncio.wait_for(_drive(stack.proxy_url, fake), 180))
        for sid in ids:
            wait_until(lambda sid=sid: _settled(stack.session(sid)), timeout=20)
        wait_settled(stack)
        wait_until(
            lambda: (
                sum(sp.name == "invoke_agent claude-code" for sp in receiver.snapshot()) >= TURNS
            ),
            timeout=30,
        )
        api["/api/sessions"] = stack.get("/api/sessions?limit=1000").content
        for path in ("/api/summary", "/api/stats", "/metrics"):
            api[path] = stack.get(path).content
        for sid in ids:
            api[f"/api/sessions/{sid}"] = stack.get(f"/api/sessions/{sid}").content
            api[f"/api/diagnosis/{sid}"] = stack.get(f"/api/diagnosis/{sid}").content
        # Recall: what the sessions were about finds them, and answers hold no secret...
        for q in ("Secret test", "redacted", "thanks again", "Done used asked", "Bash", "tmp"):
            api[f"/api/recall?q={q}"] = stack.get(
                "/api/recall", params={"q": q, "limit": 100}
            ).content
        recalled = json.loads(api["/api/recall?q=Secret test"])["sessions"]
        # ...and no piece of a secret finds anything (the answer echoes the query: only its
        # sessions are scanned).
        found_by_secret = 0
        for s in [*CORPUS, *_extra_secrets()]:
            # Single words only: a query of several words falls back to any of them.
            words = [n for n in s.needles() if re.fullmatch(r"[A-Za-z0-9]{8,40}", n)]
            for needle in words[:3]:
                got = stack.get("/api/recall", params={"q": needle}).json()["sessions"]
                found_by_secret += len(got)
                api[f"/api/recall?q=<{s.kind}>"] = json.dumps(got).encode()
        live_db = {p.name: p.read_bytes() for p in tmp_path.glob("clauditor.db*")}
    finally:
        watch.close()
        code = stack.stop()
    assert code == 0, "\n".join(stack.log[-30:])

    # The secrets did travel: the upstream saw every one of them.
    sent = b"".join(e.body for e in fake.exchanges)
    assert all(s.secret.encode() in sent or json.dumps(s.secret)[1:-1].encode() in sent
               for s in CORPUS)  # fmt: skip
    assert {"clauditor.db", "clauditor.db-wal"} <= set(live_db)
    assert len(recalled) >= len(CORPUS) // 2

    secrets = [*CORPUS, *_extra_secrets()]
    found: Counter[str] = Counter()
    for name, data in live_db.items():
        _hits(f"{name} (running)", data, secrets, found)
    for path in tmp_path.glob("clauditor.db*"):
        _hits(path.name, path.read_bytes(), secrets, found)
    log = "\n".join(stack.log).encode()
    _hits("log", log, secrets, found)
    spans = receiver.snapshot()
    for sp in spans:
        _hits("span", repr((sp.name, sp.attributes, sp.resource)).encode(), secrets, found)
    _hits("/watch", bytes(watch.raw), secrets, found)
    for path, data in api.items():
        for sid in ids:
            path = path.replace(sid, "{id}")
        _hits(path.split("?")[0], data, secrets, found)
    if found_by_secret:
        found["/api/recall by a piece of a secret"] += found_by_secret

    needles = sum(len(s.needles()) for s in secrets)
    print(
        f"\nsecrets corpus: {len(secrets)} secrets, {needles} needles; scanned "
        f"{sum(len(v) for v in live_db.values())} db bytes, {len(log)} log bytes, "
        f"{len(spans)} spans, {len(watch.events())} watch events, {len(api)} API answers; "
        f"hits: {sum(found.values())} in {len({w.split(': ')[0] for w in found})} places"
    )
    assert not found, "\n".join(f"{n:5d}  {w}" for w, n in found.most_common())

    # What shows instead: the markers, in the stored prompts, summaries and tool summaries.
    shown = b"".join(api[f"/api/sessions/{sid}"] for sid in ids) + bytes(watch.raw)
    kinds = {s.kind for s in CORPUS}
    assert all(f"[redacted:{k}]".encode() in shown for k in kinds), kinds
    assert b"[redacted:" in bytes(watch.raw)
    assert any("[redacted:" in str(sp.attributes) for sp in spans)
