"""History through a running core: privacy on disk, and the CLI against the live API."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest

from clauditor.sim.replies import Reply, ToolCall
from clauditor.sim.server import FakeUpstream
from tests.helpers import fixture_posts, headers_of, wait_until
from tests.integration.reliability import wait_stored
from tests.integration.stack import Stack

pytestmark = pytest.mark.integration

FILE_CONTENTS = "PRIVATE-FILE-CONTENTS-7f3a9c do not store me"
PROMPT_TAIL = "TAIL-OF-A-VERY-LONG-PROMPT-1b2c"


def _cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clauditor", *args, "--url", stack.api_url],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


def test_nothing_sensitive_on_disk_and_cli_answers(stack: Stack, fake: FakeUpstream) -> None:
    first, second = (copy.deepcopy(r) for r in fixture_posts("b_tool_bash"))
    sid = headers_of(first)["x-claude-code-session-id"]
    tool_id = first["response"]["content"][1]["id"]
    long_prompt = "please look at the auth middleware " + "and more words " * 300 + PROMPT_TAIL
    first["body"]["messages"][0]["content"][1]["text"] = long_prompt
    second["body"]["messages"][0]["content"][1]["text"] = long_prompt
    second["body"]["messages"][-1]["content"][0]["content"] = FILE_CONTENTS
    fake.script(
        sid,
        [
            Reply(tool_calls=[ToolCall("Read", {"file_path": "/srv/app/auth.py"}, id=tool_id)]),
            Reply(text="The auth middleware now checks token expiry."),
        ],
    )
    assert stack.post_record(first).status_code == 200
    assert stack.post_record(second).status_code == 200
    wait_until(lambda: stack.session(sid).get("session", {}).get("requests") == 2, timeout=10)

    listed = json.loads(_cli(stack, "sessions", "--json").stdout)["sessions"]
    assert [s["session_id"] for s in listed] == [sid]
    done = _cli(stack, "recall", "auth middleware", "--json")
    assert done.returncode == 0, done.stderr
    hits = json.loads(done.stdout)["sessions"]
    assert hits[0]["session_id"] == sid
    assert hits[0]["last_text"] == "The auth middleware now checks token expiry."
    assert (
        json.loads(_cli(stack, "recall", "auth.py", "--json").stdout)["sessions"][0]["session_id"]
        == sid
    )  # the path a tool read is searchable
    done = _cli(stack, "diagnose", sid, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"session_id": sid, "findings": []}
    missing = _cli(stack, "diagnose", "no-such-session")
    assert missing.returncode == 1
    assert "no session 'no-such-session'" in missing.stderr

    wait_stored(stack)
    assert stack.stop() == 0
    raw = b"".join(p.read_bytes() for p in stack.db.parent.glob(stack.db.name + "*"))
    assert b"sk-ant-test-fake" not in raw
    assert FILE_CONTENTS.encode() not in raw
    assert PROMPT_TAIL.encode() not in raw  # only a capped, cleaned first prompt is kept
    assert b"please look at the auth middleware" in raw


def test_cli_says_when_the_core_is_unreachable(tmp_path) -> None:  # type: ignore[no-untyped-def]
    done = subprocess.run(
        [sys.executable, "-m", "clauditor", "sessions", "--url", "http://127.0.0.1:9"],
        capture_output=True, text=True, timeout=30, check=False,
        env={"PATH": "/usr/bin:/bin", "XDG_DATA_HOME": str(tmp_path), "HOME": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().startswith("clauditor: the core is not reachable at")
