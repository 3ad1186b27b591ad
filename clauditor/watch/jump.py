"""`clauditor jump ID`: to the tmux pane the Claude Code of that session runs in.

Claude Code 2.1.332's session registry names the pane (`session:@window.%pane`); the core
serves it as the session's `tmux_pane`. Inside tmux this switches the client there;
outside, it attaches to that tmux session with the pane selected.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Sequence

from clauditor.errors import ClauditorError
from clauditor.watch.client import WatchClient, WatchUnavailable

_PANE = re.compile(r"^(?P<session>[^:]+):(?P<window>@\d+)\.(?P<pane>%\d+)$")


class JumpError(ClauditorError):
    """Nowhere to jump: the message is one line for the user."""


Runner = Callable[[Sequence[str]], int]


def _run(argv: Sequence[str]) -> int:
    return subprocess.run(list(argv), check=False).returncode


def tmux_target(pane: str) -> tuple[str, str, str]:
    m = _PANE.match(pane.strip())
    if m is None:
        raise JumpError(f"not a tmux pane Claude Code names: {pane!r}")
    return m["session"], m["window"], m["pane"]


def jump_commands(pane: str, inside_tmux: bool) -> list[list[str]]:
    session, window, pane_id = tmux_target(pane)
    select = [["tmux", "select-window", "-t", window], ["tmux", "select-pane", "-t", pane_id]]
    if inside_tmux:
        return [["tmux", "switch-client", "-t", session], *select]
    return [*select, ["tmux", "attach-session", "-t", session]]


def session_pane(url: str, session_id: str) -> tuple[str, str]:
    """(full session id, its tmux pane) from the core; JumpError when there is none."""
    client = WatchClient(url, session_id)
    try:
        client.resolve()  # a short id becomes the full one; unknown / ambiguous: one line
    except WatchUnavailable as exc:
        raise JumpError(str(exc)) from None
    assert client.detail is not None
    s = client.detail["session"]
    pane = s.get("tmux_pane")
    if not pane:
        raise JumpError(
            f"session {s['session_id'][:8]} runs in no tmux pane clauditor knows of (it needs "
            "Claude Code >= 2.1.332, running in tmux, on this machine)"
        )
    return s["session_id"], pane


def jump(url: str, session_id: str, run: Runner = _run, inside_tmux: bool | None = None) -> str:
    """Switch tmux to the session's pane; returns the pane."""
    _, pane = session_pane(url, session_id)
    inside = bool(os.environ.get("TMUX")) if inside_tmux is None else inside_tmux
    for argv in jump_commands(pane, inside):
        if run(argv) != 0:
            raise JumpError(f"`{' '.join(argv)}` failed: is that tmux server still running?")
    return pane
