"""Text from the wire reaches a terminal only without escape sequences or control
characters: `recall`, `sessions`, `diagnose`, `models`, the `watch` dashboard and session
view, `--plain` lines and tmux pane titles (one shared helper at the rendering edge)."""

from __future__ import annotations

import re
from io import StringIO
from typing import Any

import pytest
from rich.console import Console, RenderableType

from clauditor.reports.models import models_view
from clauditor.reports.render import diagnosis_view, recall_view, sessions_table
from clauditor.safetext import terminal_safe, terminal_text
from clauditor.watch.render import pane_title, plain_line, render_dashboard, render_session
from clauditor.watch.state import WatchState
from tests.watch.conftest import T0, A, ev

# Clear the screen, retitle the window, write the clipboard (OSC 52), blink, a C1 CSI,
# a bell, a backspace, a carriage return that overwrites the line, and DEL.
HOSTILE = (
    "fix\x1b[2J the\x1b]0;pwned\x07 bug\x1b]52;c;cm0gLXJm\x1b\\ now\x1b[5m"
    "\x9b2K\x07\x08\r\x7f\x1bc done"
)
CLEAN = "fix the bug now done"
_RICH_SGR = re.compile(r"\x1b\[[0-9;]*m")  # the colours Rich adds itself


def _no_controls(out: str, keep_sgr: bool = False) -> None:
    if keep_sgr:
        out = _RICH_SGR.sub("", out)
    bad = sorted(
        {f"{ord(c):#x}" for c in out if (ord(c) < 32 and c != "\n") or 0x7F <= ord(c) <= 0x9F}
    )
    assert not bad, f"control characters reached the terminal: {bad}: {out!r}"
    assert "pwned" not in out and "cm0gLXJm" not in out


def _render(renderable: RenderableType, color: bool = False) -> str:
    out = StringIO()
    Console(
        file=out, width=200, force_terminal=color, color_system="truecolor" if color else None
    ).print(renderable)
    return out.getvalue()


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        (HOSTILE, CLEAN),
        ("tab\tand\nnewline kept", "tab\tand\nnewline kept"),
        ("ünïcode 日本 ✓", "ünïcode 日本 ✓"),
        ("unterminated \x1b]0;title", "unterminated "),
        ("dcs \x1bPq#0;2;0;0;0\x1b\\ end", "dcs  end"),
        ("nul\x00 and \x1f unit sep", "nul and  unit sep"),
    ],
)
def test_terminal_text(raw: str, clean: str) -> None:
    assert terminal_text(raw) == clean


def test_one_line_and_nested() -> None:
    assert terminal_text("a\tb\n\nc", one_line=True) == "a b c"
    value: Any = {"k\x1b[1m": ["x\x07", ("y\x9b1m",)], "n": 3}
    assert terminal_safe(value) == {"k": ["x", ("y",)], "n": 3}


def _session_row(**over: Any) -> dict[str, Any]:
    row = {
        "session_id": "s\x1b[31m1234567890",
        "model": "claude-\x1b]0;pwned\x07opus",
        "started_at": "2027-01-15T08:00:00Z",
        "turns": 1,
        "tool_calls": 0,
        "estimated_cost_usd": 0.1,
        "first_prompt": HOSTILE,
        "last_text": HOSTILE,
        "findings": 0,
    }
    return {**row, **over}


def test_reports_strip_controls() -> None:
    _no_controls(_render(sessions_table([_session_row()], title="t")))
    _no_controls(_render(recall_view("q\x1b[2J", [_session_row()])))
    finding = {
        "severity": "warning",
        "code": "retry_storm",
        "message": HOSTILE,
        "evidence": {"tools": [HOSTILE]},
        "advice": [HOSTILE],
    }
    _no_controls(_render(diagnosis_view({"session_id": "x\x1b[2J", "findings": [finding]})))
    report = {
        "source": "packaged",
        "catalog": [],
        "unknown_seen": [{"model": "evil\x1b]0;pwned\x07", "requests": 1, "last_seen": "x"}],
    }
    _no_controls(_render(models_view(report)))
    assert CLEAN in _render(recall_view("q", [_session_row()]))


def _hostile_state() -> WatchState:
    state = WatchState()
    state.apply({"type": "connection", "state": "connected"})
    state.apply(ev("hello", None, 0, live=[A], version="0.1.0"))
    state.apply(ev("session_start", A, 0, name=HOSTILE, model="claude-\x1b[5mopus",
                   prompt=HOSTILE, status="active"))  # fmt: skip
    state.apply(ev("tool_use", A, 1, tool="Bash\x1b[2J", summary=HOSTILE, pending_tools=1))
    state.apply(ev("request_error", A, 2, error_type="x\x1b]0;pwned\x07", status=500))
    return state


def test_watch_views_strip_controls() -> None:
    state = _hostile_state()
    for color in (False, True):
        _no_controls(_render(render_dashboard(state, T0 + 3, url="u"), color), keep_sgr=color)
        _no_controls(_render(render_session(state, A, T0 + 3, url="u"), color), keep_sgr=color)
    view = state.session(A)
    assert view is not None
    title = pane_title(view)
    _no_controls(title)
    assert "\n" not in title and "\t" not in title
    for event in (
        ev("tool_use", A, 1, tool="Bash", summary=HOSTILE),
        ev("session_start", A, 0, name=HOSTILE, model="m\x1b[2J", prompt=HOSTILE + "\nmore"),
    ):
        line = plain_line(event)
        _no_controls(line)
        assert "\n" not in line


def test_log_lines_strip_controls() -> None:
    import logging

    from clauditor.cli import _TerminalFormatter

    record = logging.LogRecord("x", logging.WARNING, "f", 1, "drift: model %s", (HOSTILE,), None)
    line = _TerminalFormatter("%(levelname)s %(message)s").format(record)
    assert line == f"WARNING drift: model {CLEAN}"
