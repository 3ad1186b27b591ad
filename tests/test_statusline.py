"""`clauditor statusline`: the line it prints, and its short line whenever anything is wrong.

Fed the payload the real Claude Code 2.1.332 piped to its status-line command
(tests/fixtures/claude-code-2.1.332/statusline) and a canned answer of the core, served by
a small HTTP server on loopback: the text is compared exactly.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from clauditor import statusline as sl
from clauditor.netaddr import free_port

CAPTURE = Path(__file__).parent / "fixtures" / "claude-code-2.1.332" / "statusline"
PAYLOADS = (CAPTURE / "payloads.jsonl").read_text().splitlines()
LAST = PAYLOADS[-1].encode()
SID = "56fb9a3f-2a6c-4192-84ec-7b4d8b9fe343"

VIEW = {  # what POST /api/sessions/{id}/client_view answers under "statusline"
    "session_id": SID,
    "state": "your_turn",
    "model": "claude-opus-5-5",
    "served_model": "claude-sonnet-5-5",
    "ttft_ms": 812.4,
    "cache_ttl_seconds": 300,
    "cache_left_seconds": 252.7,
    "context_fill": 0.014301,
    "cost_usd": 0.074983,
    "unpriced_requests": 0,
    "needs_you_others": 2,
    "client_drift": ["cost_usd"],
}


# ---------------------------------------------------------------- render (pure)


def test_the_line_for_the_captured_session() -> None:
    assert sl.render(VIEW) == (
        "clauditor · ⤵claude-sonnet-5-5 · ttft 812ms · cache 4:12 · ctx 1% · $0.07 · 2 need you"
    )


@pytest.mark.parametrize(
    ("changes", "line"),
    [
        # Served as asked, nobody else waiting: neither is shown.
        ({"served_model": None, "needs_you_others": 0}, "ttft 812ms · cache 4:12 · ctx 1% · $0.07"),
        # Unknown cost is `$?`, never `$0.00`; a total missing unpriced requests ends `+?`.
        ({"cost_usd": None, "unpriced_requests": 3}, "· $? · 2 need you"),
        ({"cost_usd": 1.5, "unpriced_requests": 1}, "· $1.50+? · 2 need you"),
        ({"cost_usd": 0.004}, "· <$0.01 ·"),
        ({"ttft_ms": 1830.0, "cache_left_seconds": 0.0}, "ttft 1.8s · cache expired ·"),
        ({"context_fill": 0.004}, "· ctx <1% ·"),
        ({"context_fill": 0.675, "cache_left_seconds": 3599.0}, "· cache 59:59 · ctx 68% ·"),
        ({"needs_you_others": 1}, "$0.07 · 1 need you"),
        # The served model comes off the wire: no escape sequence reaches the TUI.
        ({"served_model": "evil\x1b[2Jmodel\n"}, "clauditor · ⤵evil[2Jmodel · ttft"),
    ],
)
def test_line_variants(changes: dict[str, Any], line: str) -> None:
    assert line in sl.render({**VIEW, **changes})


def test_a_session_without_requests_says_so() -> None:
    view = {**VIEW, "served_model": None, "ttft_ms": None, "cache_left_seconds": None}
    view |= {"context_fill": None, "cost_usd": None, "needs_you_others": 0}
    assert sl.render(view) == "clauditor · no requests yet"


def test_only_the_accounting_is_forwarded() -> None:
    sid, forwarded = sl.read_payload(LAST)
    assert sid == SID
    assert sorted(forwarded) == ["context_window", "cost", "model", "prompt_cache", "version"]
    assert "/home/dev" not in json.dumps(forwarded)  # no path, no transcript


# ---------------------------------------------------------------- against a canned core


class CannedCore:
    """An HTTP server on loopback answering every request with one canned response, and
    keeping what it was sent; `silent` accepts and never answers."""

    def __init__(self, status: int = 200, body: bytes = b"", silent: bool = False) -> None:
        self.status, self.body, self.silent = status, body, silent
        self.seen: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        held = []
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            if self.silent:
                held.append(conn)
                continue
            with conn:
                conn.settimeout(2)
                data = b""
                while b"\r\n\r\n" not in data and len(data) < 1 << 20:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                lines = head.lower().split(b"\r\n")
                sizes = [int(x.split(b":")[1]) for x in lines if x.startswith(b"content-length")]
                length = sizes[0] if sizes else 0
                while len(body) < length:
                    body += conn.recv(65536)
                self.seen.append(head + b"\r\n\r\n" + body)
                conn.sendall(
                    f"HTTP/1.1 {self.status} X\r\ncontent-type: application/json\r\n"
                    f"content-length: {len(self.body)}\r\n\r\n".encode()
                    + self.body
                )
        for conn in held:
            conn.close()

    def __enter__(self) -> CannedCore:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


def answer(view: dict[str, Any]) -> bytes:
    return json.dumps({"client_view": {}, "client_drift": {}, "statusline": view}).encode()


def test_one_post_with_the_accounting_and_the_line_from_the_answer() -> None:
    with CannedCore(body=answer(VIEW)) as core:
        line = sl.line_for(LAST, core.url)
    assert line == sl.render(VIEW)
    (request,) = core.seen
    head, _, body = request.partition(b"\r\n\r\n")
    assert head.startswith(f"POST /api/sessions/{SID}/client_view HTTP/1.1\r\n".encode())
    assert f"Host: 127.0.0.1:{core.port}".encode() in head
    assert b"Content-Type: application/json" in head and b"Origin" not in head
    sent = json.loads(body)
    assert sent["cost"]["total_cost_usd"] == 0.0800142 and "cwd" not in sent


def test_fallbacks() -> None:
    down = f"http://127.0.0.1:{free_port()}"
    assert sl.line_for(LAST, down) == "clauditor: core not running"
    assert sl.line_for(b"{not json", down) == "clauditor: no session in the status line input"
    assert sl.line_for(b'{"session_id": "../../etc"}', down) == sl.NO_INPUT
    assert sl.line_for(b"[]", down) == sl.NO_INPUT
    assert (
        sl.line_for(LAST, "https://127.0.0.1:9091") == "clauditor: --url must be http://HOST:PORT"
    )
    unknown = json.dumps({"error": "not_found", "needs_you_others": 1}).encode()
    with CannedCore(404, unknown) as core:
        assert (
            sl.line_for(LAST, core.url)
            == "clauditor: no traffic from this session yet · 1 need you"
        )
    with CannedCore(500, b"Internal Server Error") as core:
        assert sl.line_for(LAST, core.url) == "clauditor: core error (HTTP 500)"
    with CannedCore(200, b'{"statusline": 5}') as core:
        assert sl.line_for(LAST, core.url) == "clauditor: core error (HTTP 200)"


def test_a_core_that_never_answers_costs_the_timeout_not_more() -> None:
    with CannedCore(silent=True) as core:
        start = time.monotonic()
        line = sl.line_for(LAST, core.url, timeout=0.3)
        took = time.monotonic() - start
    assert line == "clauditor: core not answering"
    assert took < 1.0


def test_a_terminal_on_stdin_is_no_input() -> None:
    class Tty(io.BytesIO):
        def isatty(self) -> bool:
            return True

    assert sl.run(Tty(LAST), "http://127.0.0.1:1") == sl.NO_INPUT


@contextmanager
def no_core() -> Iterator[str]:
    yield f"http://127.0.0.1:{free_port()}"


@pytest.mark.parametrize("argv", [["--url", "{url}"], ["--url={url}"]])
def test_the_command_exits_0_with_one_line_and_nothing_on_stderr(argv: list[str]) -> None:
    with no_core() as url:
        done = subprocess.run(
            [sys.executable, "-m", "clauditor", "statusline", *(a.format(url=url) for a in argv)],
            input=b"garbage",
            capture_output=True,
            timeout=30,
            env={**os.environ, "CLAUDITOR_URL": "http://127.0.0.1:1"},
        )
    assert (done.returncode, done.stdout, done.stderr) == (0, sl.NO_INPUT.encode() + b"\n", b"")
    with no_core() as url:
        done = subprocess.run(
            [sys.executable, "-m", "clauditor", "statusline"],
            input=LAST,
            capture_output=True,
            timeout=30,
            env={**os.environ, "CLAUDITOR_URL": url},
        )
    assert (done.returncode, done.stdout, done.stderr) == (0, sl.CORE_DOWN.encode() + b"\n", b"")


def test_the_fast_path_leaves_the_cli_unimported() -> None:
    # The point of clauditor.launch: neither click nor the rest of clauditor on this path.
    code = (
        "import sys; sys.argv = ['clauditor', 'statusline', '--url', 'http://127.0.0.1:1'];"
        "from clauditor import launch\n"
        "try:\n    launch.main()\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('click', 'httpx', 'rich', 'fastapi', 'typing') or m.startswith('clauditor.')"
        " and m not in ('clauditor.launch', 'clauditor.statusline'))\n"
        "print(heavy, file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], input=LAST, capture_output=True, timeout=30, check=True
    )
    assert done.stdout == sl.CORE_DOWN.encode() + b"\n"
    assert done.stderr.decode().strip() == "[]"


def test_help_goes_to_click() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "clauditor", "statusline", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "statusLine" in done.stdout and "--url" in done.stdout
