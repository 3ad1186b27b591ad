"""Short ids through the real stack: the API, `clauditor diagnose` and `watch --session`."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from clauditor.cli import main
from tests.helpers import fixture_posts
from tests.integration.stack import Stack

pytestmark = pytest.mark.integration

A = "da3a0740-1111-4000-8000-000000000001"
B = "da3a9999-2222-4000-8000-000000000002"


def test_short_ids_in_the_api_and_the_cli(stack: Stack, tmp_path: Path) -> None:
    record = fixture_posts("a_plain_text")[0]
    for sid in (A, B):
        assert stack.post_record(record, session_id=sid).status_code == 200
        stack.session_when(sid, requests=1, in_flight=0)

    detail = stack.get("/api/sessions/da3a0740")
    assert detail.status_code == 200
    assert detail.json()["session"]["session_id"] == A
    ambiguous = stack.get("/api/sessions/da3a")
    assert ambiguous.status_code == 409
    assert ambiguous.json()["candidates"] == [A, B]
    unknown = stack.get("/api/sessions/ffffffff")
    assert unknown.status_code == 404
    assert "`clauditor sessions` lists them" in unknown.json()["detail"]
    assert stack.get("/api/diagnosis/da3a9999").json()["session_id"] == B

    url = stack.api_url
    done = CliRunner().invoke(main, ["diagnose", "da3a9999", "--url", url, "--json"])
    assert done.exit_code == 0, done.output
    assert '"session_id": "' + B + '"' in done.output
    done = CliRunner().invoke(main, ["diagnose", "da3a", "--url", url])
    assert done.exit_code == 1
    assert done.output.strip().endswith("type more of it")
    assert A in done.output and B in done.output

    # jump: an unknown id and a session no tmux pane is known for are one clear line each.
    done = CliRunner().invoke(main, ["jump", "ffffffff", "--url", url])
    assert done.exit_code == 1 and "no session 'ffffffff'" in done.output
    done = CliRunner().invoke(main, ["jump", "da3a9999", "--url", url])
    assert done.exit_code == 1 and "runs in no tmux pane clauditor knows of" in done.output

    # watch --session: a short id follows that session; an unknown one is an error at
    # once, not an endless wait.
    watch = [sys.executable, "-m", "clauditor", "watch", "--url", url, "--plain"]
    bad = subprocess.run(
        [*watch, "--session", "ffffffff"], capture_output=True, text=True, timeout=30
    )
    assert bad.returncode == 1
    assert "no session 'ffffffff'" in bad.stderr and "clauditor sessions" in bad.stderr
    with subprocess.Popen(
        [*watch, "--session", "da3a0740"], stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        watchdog = threading.Timer(30, proc.kill)  # a hung watcher fails, never hangs
        watchdog.start()
        try:
            lines = iter(proc.stdout)  # bounded: the watchdog ends the stream
            # A's history comes first when it is older than /watch's own replay.
            hello = next(line for line in lines if "(history)" not in line)
            start = next(lines)  # the snapshot's session_start of A
            # B's next request must not show; A's must.
            assert stack.post_record(record, session_id=B).status_code == 200
            stack.session_when(B, requests=2, in_flight=0)
            assert stack.post_record(record, session_id=A).status_code == 200
            live = []
            for line in lines:
                if "(replay)" not in line and "quota_status" not in line:
                    live.append(line.split())
                if any(words[2] == "request_end" for words in live):
                    break
        finally:
            watchdog.cancel()
            proc.terminate()
    assert hello.split()[1:3] == ["-", "hello"]
    assert start.split()[1:3] == ["da3a0740", "session_start"]
    assert "(snapshot)" in start
    # Only A's events (short id da3a0740): its second request; B's never showed up.
    assert {words[1] for words in live} == {"da3a0740"}
    assert [w[2] for w in live if w[2].startswith("request_")] == ["request_start", "request_end"]
    assert stack.session(B)["session"]["requests"] == 2
