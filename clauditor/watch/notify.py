"""`clauditor watch --notify`: an alert rings the terminal bell, and inside tmux it shows
as a tmux message too, so a session that needs you is noticed from another window."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable
from typing import Any, TextIO

from clauditor.safetext import terminal_text
from clauditor.watch.render import describe

TMUX_MESSAGE_MS = 5000


def tmux_literal(text: str) -> str:
    """Text for `tmux display-message`, which expands formats: `#(cmd)` would run a shell
    command, so every `#` is doubled; control characters never reach the terminal."""
    return terminal_text(text, one_line=True).replace("#", "##")


class Notifier:
    def __init__(
        self,
        bell: TextIO,
        *,
        in_tmux: bool | None = None,
        run: Callable[[list[str]], Any] | None = None,
    ) -> None:
        self.bell = bell
        self.in_tmux = bool(os.environ.get("TMUX")) if in_tmux is None else in_tmux
        self.run = run or (lambda argv: subprocess.run(argv, check=False, timeout=5))
        self.rung = 0

    def __call__(self, event: dict[str, Any]) -> None:
        # Replayed alerts are old news: only a live one rings.
        if event.get("type") != "alert" or event.get("replay"):
            return
        self.rung += 1
        self.bell.write("\a")
        self.bell.flush()
        if self.in_tmux:
            message = tmux_literal(f"clauditor: {describe(event)}"[:200])
            # A notification is a courtesy: never worth failing the view.
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                self.run(["tmux", "display-message", "-d", str(TMUX_MESSAGE_MS), message])
