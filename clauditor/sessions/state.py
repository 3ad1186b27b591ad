"""One state per session, for every view: which one is working, which one needs you.

- `needs_you`: Claude Code waits on the user outside the conversation (a permission
  prompt, or another `waitingFor` in its registry): only the registry can tell.
- `working`: a request is streaming (or the registry says `busy` between requests).
- `tool`: the model asked for a tool and it is running (its name in `tool`).
- `your_turn`: the last turn ended; Claude Code waits for the next prompt.
- `idle`: nothing for `--idle-timeout`; `ended`: the process is gone or `--end-timeout`.

`state_source` says where the verdict came from: `claude_code` (its session registry) or
`wire` (what clauditor saw on the wire). Pure: the tracker calls it on every change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from clauditor.sessions.models import Session
from clauditor.sessions.registry import RegistryEntry

SessionState = Literal["needs_you", "working", "tool", "your_turn", "idle", "ended"]
# The order views group sessions in, most urgent first (like Claude Code's agent view).
STATES: tuple[SessionState, ...] = ("needs_you", "working", "tool", "your_turn", "idle", "ended")
StateSource = Literal["claude_code", "wire"]


@dataclass(frozen=True, slots=True)
class StateView:
    state: SessionState
    source: StateSource
    waiting_for: str | None = None
    tool: str | None = None


def state_of(session: Session, entry: RegistryEntry | None) -> StateView:
    if session.status == "ended":
        return StateView("ended", "wire")
    if entry is not None and entry.status == "waiting":
        return StateView("needs_you", "claude_code", waiting_for=entry.waiting_for or "input")
    if session.in_flight:
        return StateView("working", "wire")
    running = [
        c
        for c in session.pending_tools.values()
        if c.outcome == "pending" and not c.subagent and c.requested_at is not None
    ]
    if running:
        return StateView("tool", "wire", tool=running[-1].name)
    if entry is not None and entry.status == "busy":
        return StateView("working", "claude_code")
    if session.status == "idle":
        return StateView("idle", "wire")
    if session.current_turn is not None:
        return StateView("working", "wire")  # between two requests of one turn
    if entry is not None and entry.status == "idle":
        return StateView("your_turn", "claude_code")
    return StateView("your_turn", "wire")
