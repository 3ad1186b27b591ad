"""Claude Code's session registry (~/.claude/sessions/<pid>.json), joined to the wire.

The three file shapes are the real 2.1.332's, captured from an interactive session under
tmux driven into a permission prompt (fixtures/claude-code-2.1.332/registry).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from clauditor.clock import ManualClock
from clauditor.sessions.listener import TrackerListener
from clauditor.sessions.registry import RegistryEntry, RegistryReader, parse_entry, project_of
from clauditor.sessions.tracker import SessionTracker
from tests.helpers import fixture_posts
from tests.sessions.replay import Replayer

SHAPES = Path(__file__).parent.parent / "fixtures" / "claude-code-2.1.332" / "registry"


def shape(name: str) -> dict:
    return json.loads((SHAPES / f"{name}.json").read_text())


def test_real_registry_files_parse() -> None:
    idle = parse_entry((SHAPES / "idle.json").read_bytes())
    assert idle is not None
    raw = shape("idle")
    assert (idle.pid, idle.session_id, idle.cwd) == (raw["pid"], raw["sessionId"], raw["cwd"])
    assert (idle.status, idle.waiting_for, idle.name) == ("idle", None, raw["name"])
    assert idle.tmux_pane == raw["tmux"] and idle.tmux_pane.startswith("regcap:@")
    assert idle.started_at == raw["startedAt"] / 1000
    waiting = parse_entry((SHAPES / "waiting.json").read_bytes())
    assert waiting is not None
    assert (waiting.status, waiting.waiting_for) == ("waiting", "permission prompt")
    assert waiting.status_since == shape("waiting")["statusUpdatedAt"] / 1000


@pytest.mark.parametrize(
    "raw",
    [b"", b"nope", b"[]", b'{"pid": "1", "sessionId": "s"}', b'{"pid": 1}', b"x" * 70_000],
)
def test_what_is_not_a_registry_file_is_skipped(raw: bytes) -> None:
    assert parse_entry(raw) is None


def test_project_is_the_git_root_name_else_the_directory(tmp_path: Path) -> None:
    repo = tmp_path / "myrepo"
    (repo / ".git").mkdir(parents=True)
    (repo / "src" / "pkg").mkdir(parents=True)
    assert project_of(str(repo / "src" / "pkg")) == "myrepo"
    assert project_of(str(tmp_path / "loose")) == "loose"
    assert project_of(None) is None


def test_the_reader_skips_keys_and_dead_processes_and_rereads_only_changes(
    tmp_path: Path,
) -> None:
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    live = {**shape("idle"), "pid": os.getpid(), "procStart": None}
    dead = {**shape("idle"), "pid": 2**22 + 17, "sessionId": "dead-session"}
    (sessions / f"{os.getpid()}.json").write_text(json.dumps(live))
    (sessions / "999.json").write_text(json.dumps(dead))
    (sessions / f"{os.getpid()}.abc.key").write_text("a peer token: never read")
    reads: list[str] = []
    reader = RegistryReader(tmp_path)
    original = reader._read

    def counting(path: Path, size: int) -> RegistryEntry | None:
        reads.append(path.name)
        return original(path, size)

    reader._read = counting  # type: ignore[method-assign]
    first = reader.poll()
    assert list(first) == [live["sessionId"]]  # the dead pid's file is stale
    assert sorted(reads) == sorted([f"{os.getpid()}.json", "999.json"])
    reads.clear()
    assert reader.poll() == first and reads == []  # nothing changed: nothing read
    shutil.rmtree(sessions)
    assert reader.poll() == {} and reader.available is False


class States(TrackerListener):
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str | None, str]] = []

    def state_changed(self, session, previous: str) -> None:  # type: ignore[no-untyped-def]
        self.seen.append((session.state, previous, session.waiting_for, session.state_source))


def entry_for(session_id: str, name: str) -> RegistryEntry:
    e = parse_entry(json.dumps({**shape(name), "sessionId": session_id}).encode())
    assert e is not None
    return e


def test_registry_states_join_the_wire_and_the_process_end_ends_the_session() -> None:
    clock = ManualClock()
    states = States()
    tracker = SessionTracker(clock, listeners=[states])
    first, second = fixture_posts("b_tool_bash")
    sid = "04d0a982-8c0f-4567-aba3-6d8e967e76cc"
    # Claude Code started: the registry knows the session before the wire does.
    tracker.apply_registry({sid: entry_for(sid, "idle")})
    api = tracker.sessions[sid].as_api()
    assert (api["state"], api["state_source"], api["project"]) == (
        "your_turn",
        "claude_code",
        "project",
    )
    assert (api["cwd"], api["tmux_pane"]) == (shape("idle")["cwd"], shape("idle")["tmux"])
    replay = Replayer(tracker, clock)
    replay.exchange(first)  # the response asks for Bash: a tool runs
    assert tracker.sessions[sid].state == "tool"
    # ... behind a permission prompt: only the registry can tell.
    tracker.apply_registry({sid: entry_for(sid, "waiting")})
    s = tracker.sessions[sid].as_api()
    assert (s["state"], s["waiting_for"], s["state_source"]) == (
        "needs_you",
        "permission prompt",
        "claude_code",
    )
    tracker.apply_registry({sid: entry_for(sid, "idle_after")})  # answered
    replay.exchange(second)
    assert tracker.sessions[sid].state == "your_turn"
    tracker.apply_registry({})  # the process exited
    assert sid not in tracker.sessions
    assert [s[0] for s in states.seen] == [
        "your_turn",
        "working",
        "tool",
        "needs_you",
        "tool",
        "working",
        "your_turn",
        "ended",
    ]
