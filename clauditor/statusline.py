"""`clauditor statusline`: one line for Claude Code's `statusLine` setting.

Claude Code runs the command after each message with a JSON payload on stdin (the session
id, paths, and its own accounting: docs/statusline.md) and shows the first line it prints.
This forwards the accounting part to the core (`POST /api/sessions/{id}/client_view`, one
round trip on loopback) and prints the core's view of the session: the served model when
it differs from the requested one, the last time to first token, the prompt cache's
countdown, context fill, cost, and how many other sessions need you.

It runs every few seconds in every session, so it must be quick and must never fail:
stdlib only (no click, Rich, httpx or the rest of clauditor: `clauditor.launch` calls it
before anything else is imported), a raw HTTP/1.1 exchange over a socket (http.client
pulls in ssl and email, ~15 ms), a 0.3 s deadline, and on any problem a short line such as
`clauditor: core not running`, exit status 0 and nothing on stderr.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import time

TYPE_CHECKING = False  # not typing's: importing typing costs ~2 ms of a 50 ms budget
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any, BinaryIO

DEFAULT_URL = "http://127.0.0.1:9091"
TIMEOUT_S = 0.3  # the whole exchange with the core
MAX_INPUT = 1 << 20  # Claude Code's payload is ~2 KB
MAX_ANSWER = 1 << 20
SEP = " · "
LABEL = "clauditor"

# The payload's objects that hold Claude Code's own accounting: forwarded as they are; the
# rest (transcript_path, cwd, workspace) names files and stays here. The core reads them
# with clauditor.claude_code.statusline_numbers (not imported here: ~20 ms of imports).
FORWARDED = ("cost", "context_window", "rate_limits", "prompt_cache", "model", "version")
_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")

CORE_DOWN = f"{LABEL}: core not running"
CORE_SLOW = f"{LABEL}: core not answering"
NO_INPUT = f"{LABEL}: no session in the status line input"
NOT_SEEN = f"{LABEL}: no traffic from this session yet"
BAD_URL = f"{LABEL}: --url must be http://HOST:PORT"


class CoreError(Exception):
    """The core could not be asked; the message is the line to print."""


# ---------------------------------------------------------------- the payload


def read_payload(raw: bytes) -> tuple[str, dict[str, Any]]:
    """(session id, the accounting objects to forward); ValueError if it is not a payload."""
    payload = json.loads(raw)
    if not isinstance(payload, dict):
        raise ValueError("not a JSON object")
    sid = payload.get("session_id")
    if not isinstance(sid, str) or not _SESSION_ID.match(sid):
        raise ValueError("no session_id")
    return sid, {k: payload[k] for k in FORWARDED if k in payload}


# ---------------------------------------------------------------- the line


def _plain(text: str, limit: int = 48) -> str:
    """Wire text (a model id) safe for Claude Code's TUI: no escape or control character."""
    return "".join(ch for ch in text if ch.isprintable())[:limit]


def _ttft(ms: float) -> str:
    if ms < 1000:
        return f"ttft {ms:.0f}ms"
    return f"ttft {ms / 1000:.1f}s" if ms < 100_000 else f"ttft {ms / 1000:.0f}s"


def _countdown(seconds: float) -> str:
    if seconds <= 0:
        return "cache expired"
    whole = int(seconds)
    return f"cache {whole // 60}:{whole % 60:02d}"


def _context(fill: float) -> str:
    pct = fill * 100.0
    if 0 < pct < 0.5:
        return "ctx <1%"
    return f"ctx {pct:.0f}%"


def _cost(usd: float | None, unpriced: int) -> str:
    """Unknown is `$?`, never `$0.00`; a total missing some unpriced requests ends in `+?`."""
    if usd is None:
        return "$?"
    text = "<$0.01" if 0 < usd < 0.005 else f"${usd:.2f}"
    return text + "+?" if unpriced else text


def _number(view: Mapping[str, Any], key: str) -> float | None:
    value = view.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def render(view: Mapping[str, Any]) -> str:
    """The one line for the core's statusline view (GET /api/statusline/{id}). Pure."""
    parts = [LABEL]
    served = view.get("served_model")
    if isinstance(served, str) and served:
        parts.append("⤵" + _plain(served))
    ttft = _number(view, "ttft_ms")
    left = _number(view, "cache_left_seconds")
    fill = _number(view, "context_fill")
    cost = _number(view, "cost_usd")
    unpriced = int(_number(view, "unpriced_requests") or 0)
    if ttft is None and left is None and fill is None and cost is None and not unpriced:
        parts.append("no requests yet")
    else:
        if ttft is not None:
            parts.append(_ttft(ttft))
        if left is not None:
            parts.append(_countdown(left))
        if fill is not None:
            parts.append(_context(fill))
        parts.append(_cost(cost, unpriced))
    parts.extend(_others(view))
    return SEP.join(parts)


def _others(view: Mapping[str, Any]) -> list[str]:
    n = int(_number(view, "needs_you_others") or 0)
    return [f"{n} need you"] if n > 0 else []


# ---------------------------------------------------------------- the core


def _split_url(url: str) -> tuple[str, int, str]:
    """http://HOST:PORT[/prefix] -> (host for the socket, port, Host header)."""
    rest = url.strip()
    if not rest.startswith("http://"):
        raise CoreError(BAD_URL)
    netloc = rest[len("http://") :].split("/", 1)[0]
    host, _, port = netloc.rpartition(":")
    if not host or not port.isdigit():
        raise CoreError(BAD_URL)
    return host.strip("[]"), int(port), netloc


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def post_json(url: str, path: str, body: Any, timeout: float = TIMEOUT_S) -> tuple[int, Any]:
    """One HTTP/1.1 POST of JSON, the answer's (status, decoded JSON body); CoreError with
    the line to print when the core is down, slow or answers something else than JSON."""
    host, port, netloc = _split_url(url)
    data = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    )
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(head.encode() + data)
            answer = _receive(sock, deadline)
    except TimeoutError:
        raise CoreError(CORE_SLOW) from None
    except OSError:
        raise CoreError(CORE_DOWN) from None
    return _decode(answer)


def _receive(sock: socket.socket, deadline: float) -> bytes:
    """The whole answer: up to Content-Length, or until the core closes (bounded)."""
    buf = b""
    want: int | None = None
    while len(buf) < MAX_ANSWER:
        sock.settimeout(_left(deadline))
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
        if want is None and b"\r\n\r\n" in buf:
            head = buf.split(b"\r\n\r\n", 1)[0].lower()
            found = re.search(rb"\r\ncontent-length:\s*(\d+)", head)
            want = len(head) + 4 + int(found.group(1)) if found else -1
        if want is not None and want >= 0 and len(buf) >= want:
            break
    return buf


def _decode(answer: bytes) -> tuple[int, Any]:
    head, sep, body = answer.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if not sep or len(status_line) < 2 or not status_line[1].isdigit():
        raise CoreError(CORE_DOWN)
    status = int(status_line[1])
    try:
        return status, json.loads(body)
    except ValueError:
        raise CoreError(f"{LABEL}: core error (HTTP {status})") from None


def line_for(raw: bytes, url: str, timeout: float = TIMEOUT_S) -> str:
    """The line for one status-line payload: never raises."""
    try:
        sid, forwarded = read_payload(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return NO_INPUT
    try:
        status, answer = post_json(url, f"/api/sessions/{sid}/client_view", forwarded, timeout)
    except CoreError as exc:
        return str(exc)
    if not isinstance(answer, dict):
        return f"{LABEL}: core error (HTTP {status})"
    if status == 404:
        return SEP.join([NOT_SEEN, *_others(answer)])
    view = answer.get("statusline")
    if status != 200 or not isinstance(view, dict):
        return f"{LABEL}: core error (HTTP {status})"
    return render(view)


def run(stdin: BinaryIO, url: str, timeout: float = TIMEOUT_S) -> str:
    """Read the payload from stdin (not from a terminal: nothing would ever come)."""
    try:
        if stdin.isatty():
            return NO_INPUT
        raw = stdin.read(MAX_INPUT)
    except (OSError, ValueError):
        return NO_INPUT
    try:
        return line_for(raw, url, timeout)
    except Exception:  # the one promise: a line, never a traceback in Claude Code's TUI
        return f"{LABEL}: statusline failed"


def fast_main(argv: Sequence[str]) -> int | None:
    """`clauditor statusline [--url URL]` without click; None for anything else (--help,
    a typo), which the full CLI then handles."""
    url = os.environ.get("CLAUDITOR_URL") or DEFAULT_URL
    args = list(argv)
    if len(args) == 2 and args[0] == "--url":
        url = args[1]
    elif len(args) == 1 and args[0].startswith("--url="):
        url = args[0].split("=", 1)[1]
    elif args:
        return None
    line = run(sys.stdin.buffer, url)
    try:
        # Bytes: Claude Code reads UTF-8 whatever the locale says.
        sys.stdout.buffer.write(line.encode("utf-8", "replace") + b"\n")
        sys.stdout.flush()
    except (OSError, ValueError):
        pass  # Claude Code went away; nothing to tell anyone
    return 0
