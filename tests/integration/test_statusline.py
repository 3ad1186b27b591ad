"""`clauditor statusline` against a real `clauditor up` (Envoy, the core, the fake upstream):
the captured Claude Code 2.1.332 session replayed through Envoy, then its captured
status-line payload piped to the command; and a real Claude Code 2.1.332 TUI under tmux
whose `statusLine` runs the command: its own status line shows clauditor's line
(`tmux capture-pane`), and the core's session holds Claude Code's numbers as `client_view`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from clauditor.sim.claude_cli import ClaudeHome
from clauditor.sim.replies import Reply
from clauditor.sim.server import FakeUpstream
from tests.helpers import wait_until
from tests.integration.stack import Stack, settled_detail, start_stack
from tests.integration.test_needs_you_claude_code import PROMPT_BOX, claude_332
from tests.integration.test_watch_tmux import TmuxServer

pytestmark = pytest.mark.integration

CAPTURE = Path(__file__).parents[1] / "fixtures" / "claude-code-2.1.332" / "statusline"
SID = "56fb9a3f-2a6c-4192-84ec-7b4d8b9fe343"


def lines(name: str) -> list[dict]:
    return [json.loads(x) for x in (CAPTURE / name).read_text().splitlines()]


def statusline(url: str, payload: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "clauditor", "statusline", "--url", url],
        input=payload,
        capture_output=True,
        timeout=30,
        check=False,
    )


def test_the_captured_session_through_up(stack: Stack, fake: FakeUpstream) -> None:
    records = lines("requests.jsonl")
    for record in records:
        fake.script(SID, [Reply.from_record(record["response"])])
        assert stack.post_record(record).status_code == 200
    settled_detail(stack, SID, len(records))
    payload = (CAPTURE / "payloads.jsonl").read_text().splitlines()[-1].encode()

    done = statusline(stack.api_url, payload)
    assert (done.returncode, done.stderr) == (0, b"")
    # Sonnet answered an Opus request; clauditor prices it at Sonnet 5.5's rates
    # (docs/anthropic-api.md), per million: 1424 * $4 + 10 * $20 + 12811 * $5 (Opus), then
    # 149 * $2 + 10 * $10 + 1341 * $2.5 + 12811 * $0.1 = $0.0749826. The cache was written
    # just now: 5 min left.
    line = done.stdout.decode()
    pattern = (
        r"clauditor · ⤵claude-sonnet-5-5 · ttft [\d.]+m?s · cache 4:[45]\d · ctx 1% · \$0\.07\n"
    )
    assert re.fullmatch(pattern, line), line

    session = stack.session(SID)["session"]
    view = session["client_view"]
    assert (view["cost_usd"], view["context_tokens"], view["model"]) == (
        0.0800142,
        14301,
        "claude-opus-5-5",
    )
    assert view["received_at"] is not None
    drift = session["client_drift"]
    # Claude Code priced both at Opus rates: $0.0800142, 6.288 % above the wire.
    assert drift["cost_usd"] == {"client": 0.0800142, "wire": 0.0749826, "diff_pct": 6.288}
    # The capture's cache timestamps are from the day it was taken, not now.
    assert set(drift) == {"cost_usd", "cache_expires_at"}
    listed = [s for s in stack.sessions() if s["session_id"] == SID]
    assert listed[0]["client_drift"] == drift

    light = stack.get(f"/api/statusline/{SID}").json()
    assert (light["served_model"], light["client_drift"]) == (
        "claude-sonnet-5-5",
        ["cache_expires_at", "cost_usd"],
    )

    unknown = payload.replace(SID.encode(), b"00000000-0000-4000-8000-000000000000")
    assert (
        statusline(stack.api_url, unknown).stdout
        == b"clauditor: no traffic from this session yet\n"
    )


def test_the_post_is_for_local_tools_only(stack: Stack, fake: FakeUpstream) -> None:
    record = lines("requests.jsonl")[0]
    fake.script(SID, [Reply.from_record(record["response"])])
    stack.post_record(record)
    settled_detail(stack, SID, 1)
    url = f"{stack.api_url}/api/sessions/{SID}/client_view"
    body = json.dumps({"cost": {"total_cost_usd": 99.0}})

    def post(headers: dict[str, str], content: str = body) -> httpx.Response:
        return httpx.post(url, content=content, headers=headers, timeout=5, trust_env=False)

    json_type = {"content-type": "application/json"}
    # A page in a browser: another origin, or marked cross-site: refused, no CORS header.
    for foreign in ({"origin": "http://evil.example"}, {"sec-fetch-site": "cross-site"}):
        refused = post(json_type | foreign)
        assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers
    assert post(json_type | {"host": "evil.example"}).status_code == 400  # DNS rebinding
    # The POST a page may send without a preflight (text/plain, a form): not JSON, refused.
    assert post({"content-type": "text/plain"}).status_code == 415
    assert post(json_type, "[1, 2]").status_code == 400
    assert post(json_type, "x" * (65 * 1024)).status_code == 413
    assert stack.session(SID)["session"]["client_view"] is None
    assert post(json_type).status_code == 200
    assert stack.session(SID)["session"]["client_view"]["cost_usd"] == 99.0


def clauditor_command() -> str:
    """The installed `clauditor` script beside this Python (what a user's settings name)."""
    script = Path(sys.executable).with_name("clauditor")
    if script.exists():
        return shlex.quote(str(script))
    return f"{shlex.quote(sys.executable)} -m clauditor"


# TTFT in ms, or in s past one second (a loaded machine).
LINE = re.compile(
    r"clauditor · (⤵\S+ · )?ttft [\d.]+m?s · cache (\d+:\d\d|expired) · ctx <?\d+% · \$\d+\.\d\d"
)


@pytest.mark.skipif(
    shutil.which("tmux") is None and not os.environ.get("CLAUDITOR_REQUIRE_TMUX"),
    reason="tmux is not installed (apt-get install tmux)",
)
def test_claude_codes_status_line_shows_clauditors_line(fake: FakeUpstream, tmp_path: Path) -> None:
    binary = claude_332()
    claude_home = ClaudeHome.create(tmp_path)
    home, project = claude_home.home, claude_home.project
    (home / ".claude").mkdir(parents=True)
    stack = start_stack(fake.url, tmp_path, "--claude-dir", str(home / ".claude"))
    command = f"{clauditor_command()} statusline --url {stack.api_url}"
    settings = {"statusLine": {"type": "command", "command": command}}
    (home / ".claude" / "settings.json").write_text(json.dumps(settings))
    tmux = TmuxServer(tmp_path)
    try:
        env = claude_home.env(stack.proxy_url)
        cc = "env " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        cc += f" {shlex.quote(binary)}"
        tmux("new-session", "-d", "-s", "cc", "-x", "160", "-y", "50", "-c", str(project), cc)
        # Before any request: the core knows the session from Claude Code's registry, or
        # not yet; either way the line is clauditor's.
        wait_until(lambda: PROMPT_BOX in tmux.capture("cc"), timeout=60)
        wait_until(lambda: "clauditor" in tmux.capture("cc"), timeout=30)

        def shown(prompt: str, want: str) -> str:
            tmux("send-keys", "-t", "cc", "-l", prompt)
            wait_until(lambda: prompt[-12:] in tmux.capture("cc"), timeout=10)
            tmux("send-keys", "-t", "cc", "Enter")
            screens: list[str] = []

            def found() -> str:
                screens.append(tmux.capture("cc"))
                match = [m.group(0) for m in LINE.finditer(screens[-1]) if want in m.group(0)]
                return match[0] if match else ""

            try:
                return wait_until(found, timeout=60, interval=0.2)
            except TimeoutError:
                raise AssertionError(f"no clauditor line with {want!r}:\n{screens[-1]}") from None

        first = shown("Say hello", "ctx 1%")
        assert "⤵" not in first
        registry = home / ".claude" / "sessions"
        (entry,) = [json.loads(p.read_text()) for p in registry.glob("*.json")]
        sid = entry["sessionId"]

        def settled() -> dict:
            s = stack.session(sid)["session"]
            view = s.get("client_view") or {}
            return s if view.get("cost_usd") and s["in_flight"] == 0 else {}

        session = wait_until(settled, timeout=10)
        # Claude Code's own accounting beside clauditor's: the same cost, within 1 %.
        view = session["client_view"]
        assert view["version"] == "2.1.332" and view["model"] == "claude-opus-5-5"
        assert view["cost_usd"] == pytest.approx(session["estimated_cost_usd"], rel=0.01)
        assert view["context_tokens"] == session["context_tokens"]
        assert session["client_drift"] == {}
        assert f"${session['estimated_cost_usd']:.2f}" in first

        # Another model answers: the line says which.
        second = shown("Again please [[fake:model claude-sonnet-5-5]]", "⤵claude-sonnet-5-5")
        assert second.startswith("clauditor · ⤵claude-sonnet-5-5 · ttft ")
    finally:
        tmux("kill-server", check=False)
        assert stack.stop() == 0, "\n".join(stack.log[-30:])
