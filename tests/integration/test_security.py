"""Security: loopback-only listeners, a browser-proof API, and no secret anywhere.

- Every listener of a running `clauditor up` (Envoy's proxy, the core's gRPC and API) is on
  127.0.0.1, read from /proc for the processes themselves; Envoy's admin is no TCP port at
  all (a 0600 Unix socket: test_envoy_admin.py).
- The API refuses cross-origin browser requests and preflights (no CORS header, ever) and
  requests whose Host is not a loopback name (DNS rebinding).
- After a run with an API key, an `Authorization: Bearer` token and a cookie on every
  request, none of them is in the SQLite files, the whole log, any exported span or any
  /watch event; nor is a file's contents sent back as a tool_result in the watch feed.
- A non-loopback --listen/--grpc/--api (or a TCP --envoy-admin) needs --allow-non-loopback (or
  CLAUDITOR_ALLOW_NON_LOOPBACK) and prints a warning; without it, a one-line error.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
from click.testing import CliRunner

from clauditor.cli import main
from clauditor.envoy.admin import AdminSocket, parse_admin
from clauditor.netaddr import HostPort
from clauditor.sim.claude import API_KEY
from clauditor.sim.server import FakeUpstream
from tests.helpers import fixture_posts, wait_until
from tests.integration.otlp_receiver import Receiver, otlp_receiver
from tests.integration.reliability import (
    PacedSession,
    WatchRecorder,
    bound_sockets,
    children,
    otlp_env,
    wait_settled,
)
from tests.integration.stack import Stack, start_stack

pytestmark = pytest.mark.integration

BEARER = "sk-ant-oat01-BearerTokenThatMustNeverBeStored0123456789"
COOKIE_VALUE = "sk-ant-sid01-CookieValueThatMustNeverBeStored9876543210"
COOKIE = f"sessionKey={COOKIE_VALUE}; theme=dark"
# A file's contents, sent back as every tool_result: never in the live feed.
FILE_MARKER = "FILE-CONTENTS-7f3a9c-never-in-watch"
FILE_TEXT = f"# README\n{FILE_MARKER}\n" + (Path(__file__).read_text()[:2000])
SECRETS = {"x-api-key": API_KEY, "bearer token": BEARER, "cookie": COOKIE_VALUE}
EVIL = "https://evil.example"


# -- listeners ----------------------------------------------------------------------------


def test_every_listener_of_up_is_on_loopback(stack: Stack) -> None:
    supervisor = stack.proc.pid
    processes = [supervisor, *children(supervisor)]
    assert len(processes) == 3  # the supervisor, the core, Envoy
    bound = bound_sockets(processes)
    ports = {b.port for b in bound}
    assert {stack.listen, stack.grpc, stack.api} <= ports
    exposed = [b for b in bound if b.host not in ("127.0.0.1", "::1")]
    assert not exposed, exposed
    assert not [b for b in bound if b.pid == supervisor]  # the supervisor listens on nothing


def test_history_files_are_private(stack: Stack) -> None:
    assert stack.post_record(fixture_posts("a_plain_text")[0]).status_code == 200
    files = [stack.db, Path(f"{stack.db}-wal"), Path(f"{stack.db}-shm")]
    wait_until(lambda: all(f.exists() for f in files), timeout=10)
    assert [stat.S_IMODE(os.stat(f).st_mode) for f in files] == [0o600] * 3


def test_listener_defaults_are_loopback() -> None:
    commands = main.commands  # type: ignore[attr-defined]
    flags = ("--listen", "--grpc", "--api")
    checked = admins = 0
    for name in ("up", "serve", "demo"):
        for param in commands[name].params:
            if not isinstance(param, click.Option):
                continue
            if param.opts[0] in flags:
                assert HostPort.parse(param.default).is_loopback, (name, param.opts[0])
                checked += 1
            elif param.opts[0] == "--envoy-admin":
                # No TCP port by default: a Unix socket in the runtime directory.
                assert param.default is None and parse_admin(None) == AdminSocket()
                admins += 1
    assert (checked, admins) == (3 + 2 + 3, 2)


# -- the API against browsers ---------------------------------------------------------------


def _no_cors(resp: httpx.Response) -> None:
    assert not [k for k in resp.headers if k.lower().startswith("access-control-")], resp.headers


def test_api_refuses_cross_origin_and_foreign_hosts(stack: Stack) -> None:
    api = stack.api_url
    own = f"http://127.0.0.1:{stack.api}"

    def get(path: str, method: str = "GET", **headers: str) -> httpx.Response:
        resp = httpx.request(method, api + path, headers=headers, timeout=5, trust_env=False)
        _no_cors(resp)
        return resp

    # What a page on another site makes a browser send.
    assert get("/api/sessions", Origin=EVIL).status_code == 403
    assert get("/api/stats", Origin="null").status_code == 403  # sandboxed iframe, file://
    assert get("/watch", Origin=EVIL).status_code == 403
    assert get("/api/sessions", **{"Sec-Fetch-Site": "cross-site"}).status_code == 403
    # Another port of this host is another origin (e.g. a local dev server).
    assert get("/api/sessions", Origin="http://127.0.0.1:3000").status_code == 403
    preflight = get(
        "/api/sessions",
        "OPTIONS",
        Origin=EVIL,
        **{"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "x-a"},
    )
    assert preflight.status_code == 403
    assert get("/api/sessions", "OPTIONS", Origin=own, **{
        "Access-Control-Request-Method": "GET"
    }).status_code == 403  # fmt: skip
    # DNS rebinding: a hostile name resolving to 127.0.0.1.
    assert get("/api/sessions", Host="evil.example").status_code == 400
    assert get("/api/sessions", Host=f"127.0.0.1.evil.example:{stack.api}").status_code == 400
    assert get("/health", Host="evil.example", Origin=EVIL).status_code == 400
    # Two Origin (or Host) headers: one reader would take the first, another the last.
    for twice in ([("Origin", EVIL), ("Origin", own)], [("Origin", own), ("Origin", EVIL)]):
        doubled = httpx.get(api + "/api/sessions", headers=twice, timeout=5, trust_env=False)
        assert doubled.status_code == 403 and "more than one Origin" in doubled.text
        _no_cors(doubled)
    # This machine's tools: no Origin (curl, clauditor watch, Prometheus), or the API's own.
    assert get("/api/sessions").status_code == 200
    assert get("/api/sessions", Origin=own).status_code == 200
    assert get("/api/sessions", **{"Sec-Fetch-Site": "same-origin"}).status_code == 200
    assert get("/health", Host=f"localhost:{stack.api}").status_code == 200
    assert get("/metrics").status_code == 200


# -- no secrets anywhere --------------------------------------------------------------------


class LeakySession(PacedSession):
    """Claude Code with every credential a request could carry, and a file's contents as
    each tool's output."""

    tool_output = FILE_TEXT

    def headers(self, content_length: int, **kw: Any) -> list[tuple[str, str]]:
        out = super().headers(content_length, **kw)
        extra = [("Authorization", f"Bearer {BEARER}"), ("Cookie", COOKIE)]
        return out[:-1] + extra + out[-1:]  # Content-Length stays last


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    otlp_env(monkeypatch)
    with otlp_receiver() as r:
        yield r


def _scan(where: str, data: bytes, needles: dict[str, str]) -> None:
    for what, needle in needles.items():
        assert needle.encode() not in data, f"{what} found in {where}"


def test_no_secret_in_db_logs_spans_or_watch(
    receiver: Receiver, fake: FakeUpstream, tmp_path: Path
) -> None:
    stack = start_stack(
        fake.url, tmp_path, "--otlp-endpoint", receiver.endpoint, "--log-level", "debug"
    )
    watch = WatchRecorder(stack.api_url).start()
    api_bodies: list[bytes] = []
    try:

        async def drive() -> list[str]:
            async def one(i: int) -> str:
                async with LeakySession(stack.proxy_url) as s:
                    await s.turn(f'read the readme [[fake:tool Read {{"file_path": "/r{i}.md"}}]]')
                    await s.turn('now list [[fake:tool Bash {"command": "cat README.md"}]]')
                    await s.turn("thanks, summarise")
                    return s.session_id

            return list(await asyncio.gather(*(one(i) for i in range(3))))

        ids = asyncio.run(asyncio.wait_for(drive(), 60))
        for sid in ids:
            stack.session_when(sid, turns=3, requests=5, tool_calls=2, in_flight=0)
        wait_settled(stack)
        wait_until(
            lambda: len([s for s in receiver.snapshot() if s.name.startswith("chat ")]) >= 15,
            timeout=20,
        )
        for path in ("/api/sessions", "/api/stats", "/api/summary", "/metrics"):
            api_bodies.append(stack.get(path).content)
        for sid in ids:
            api_bodies.append(stack.get(f"/api/sessions/{sid}").content)
        live_db = {p.name: p.read_bytes() for p in tmp_path.glob("clauditor.db*")}
    finally:
        watch.close()
        code = stack.stop()
    assert code == 0, "\n".join(stack.log[-30:])

    # The credentials did travel: Envoy forwarded them untouched to the upstream.
    sent = fake.exchanges
    assert sent and all(e.header("authorization") == f"Bearer {BEARER}" for e in sent)
    assert all(e.header("cookie") == COOKIE and e.header("x-api-key") == API_KEY for e in sent)

    # The database files, during the run (db, -wal, -shm) and after a clean stop.
    assert {"clauditor.db", "clauditor.db-wal"} <= set(live_db)
    for name, data in live_db.items():
        _scan(f"{name} (running)", data, SECRETS)
    for path in tmp_path.glob("clauditor.db*"):
        _scan(path.name, path.read_bytes(), SECRETS)
    # The whole log of `clauditor up` (supervisor, core at debug level, Envoy).
    log = "\n".join(stack.log).encode()
    assert b"DEBUG" in log
    _scan("the log", log, SECRETS)
    # Every exported span: name, attributes and resource.
    spans = receiver.snapshot()
    assert len(spans) >= 15 + 9 + 6
    for s in spans:
        _scan(f"span {s.name}", repr((s.name, s.attributes, s.resource)).encode(), SECRETS)
        assert not [k for k in s.attributes if "header" in k or "cookie" in k], s.attributes
    # Every /watch event, raw bytes; and the API's views.
    events = watch.events()
    assert any(e["type"] == "tool_use" for e in events)
    assert any(e["type"] == "tool_result" for e in events)
    _scan("/watch", bytes(watch.raw), {**SECRETS, "file contents": FILE_MARKER})
    for body in api_bodies:
        _scan("the API", body, SECRETS)
    # File contents only ever travel in request bodies, which nothing stores either.
    for path in tmp_path.glob("clauditor.db*"):
        _scan(path.name, path.read_bytes(), {"file contents": FILE_MARKER})
    _scan("spans", repr([s.attributes for s in spans]).encode(), {"file": FILE_MARKER})
    print(
        f"\nsecrets scan: {sum(len(v) for v in live_db.values())} db bytes, {len(log)} log "
        f"bytes, {len(spans)} spans, {len(events)} watch events, {len(api_bodies)} API bodies"
    )


# -- --allow-non-loopback ---------------------------------------------------------------------


def _invoke(tmp_path: Path, *args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    db = ["--db", str(tmp_path / "c.db")]
    return CliRunner().invoke(main, [*args, *db], env=env, catch_exceptions=False)


@pytest.mark.parametrize(
    ("command", "flag"),
    [
        ("up", "--listen"),
        ("up", "--grpc"),
        ("up", "--api"),
        ("up", "--envoy-admin"),
        ("serve", "--grpc"),
        ("serve", "--api"),
        ("demo", "--listen"),
        ("demo", "--api"),
    ],
)
@pytest.mark.parametrize("host", ["0.0.0.0", "[::]", "192.0.2.10", "myhost.lan"])
def test_non_loopback_listener_needs_the_flag(
    command: str, flag: str, host: str, tmp_path: Path, no_start: dict[str, Any]
) -> None:
    done = _invoke(tmp_path, command, flag, f"{host}:18080")
    assert done.exit_code == 1
    lines = [x for x in done.stderr.splitlines() if x.startswith("clauditor:")]
    assert len(lines) == 1, done.stderr
    assert f"{flag} {host}:18080" in lines[0] and "--allow-non-loopback" in lines[0]
    assert not no_start  # refused before anything could listen


@pytest.mark.parametrize("how", ["flag", "env"])
def test_allow_non_loopback_warns(how: str, tmp_path: Path, no_start: dict[str, Any]) -> None:
    opt = ["--allow-non-loopback"] if how == "flag" else []
    env = {"CLAUDITOR_ALLOW_NON_LOOPBACK": "1"} if how == "env" else None
    done = _invoke(tmp_path, "serve", "--api", "0.0.0.0:19091", *opt, env=env)
    assert done.exit_code == 0, done.stderr
    assert "warning: listening beyond loopback on --api 0.0.0.0:19091" in done.stderr
    assert str(no_start["serve"].api) == "0.0.0.0:19091"

    done = _invoke(
        tmp_path, "up", "--listen", "0.0.0.0:10001", "--api", "0.0.0.0:19092", *opt, env=env
    )
    assert done.exit_code == 0, done.stderr
    # up warns about Envoy's listeners; the core it starts warns about its own.
    assert "warning: listening beyond loopback on --listen 0.0.0.0:10001" in done.stderr
    assert "--allow-non-loopback" in no_start["up"].serve_args


def test_loopback_addresses_need_no_flag(tmp_path: Path, no_start: dict[str, Any]) -> None:
    for args in (
        ["serve", "--api", "127.0.0.1:19093", "--grpc", "[::1]:19094"],
        ["up", "--listen", "localhost:10002"],
    ):
        done = _invoke(tmp_path, *args)
        assert done.exit_code == 0, done.stderr
        assert "warning" not in done.stderr
    assert "--allow-non-loopback" not in no_start["up"].serve_args
    # A TCP admin on loopback needs no flag either, but is always warned about.
    done = _invoke(tmp_path, "up", "--envoy-admin", "127.0.0.2:19901")
    assert done.exit_code == 0, done.stderr
    (warning,) = [x for x in done.stderr.splitlines() if "warning" in x]
    assert "--envoy-admin 127.0.0.2:19901 is a TCP port: any local process" in warning
