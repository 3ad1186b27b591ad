"""`clauditor watch --tmux`: one tmux pane per active session plus a small overview.

Outside tmux it bootstraps a session `clauditor-<pid>` running itself. Inside, this
process becomes the overview pane (the all-sessions dashboard) and opens a pane per live
session, each running `clauditor watch --session ID`; that pane keeps its own title
(name · model, then `· ended`). Panes are capped; the rest are listed in the overview.
Ctrl-C (or SIGTERM) closes exactly the panes this process created, by pane id.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from clauditor.errors import ClauditorError
from clauditor.watch.client import WatchClient
from clauditor.watch.live import run_live
from clauditor.watch.render import pane_title
from clauditor.watch.state import WatchState

PANE_CAP = 8
TILED_ABOVE = 4  # up to this many session panes: overview on top, sessions below
# A session pane smaller than this is unreadable: past what fits, sessions are listed in the
# overview instead (an 80x24 window holds 2).
MIN_PANE_COLS = 40
MIN_PANE_ROWS = 8
OVERVIEW_MIN_ROWS = 10


class TmuxError(ClauditorError):
    pass


class Tmux:
    """`tmux` with the server of the current client ($TMUX), or one named by socket args."""

    def __init__(self, binary: str = "tmux", server_args: Sequence[str] = ()) -> None:
        self.binary = binary
        self.server_args = tuple(server_args)

    def __call__(self, *args: str, check: bool = True) -> str:
        try:
            proc = subprocess.run(
                [self.binary, *self.server_args, *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TmuxError(f"tmux {args[0]}: {exc}") from None
        if check and proc.returncode != 0:
            raise TmuxError(f"tmux {args[0]}: {proc.stderr.strip() or proc.returncode}")
        return proc.stdout.strip()


def self_command() -> list[str]:
    """How to run this clauditor again, whatever PATH the tmux server has."""
    return [sys.executable, "-m", "clauditor"]


def bootstrap(url: str, tmux: Tmux, *, attach: bool, pane_cap: int = PANE_CAP) -> int:
    """Not inside tmux: start `clauditor-<pid>` running `watch --tmux`, then attach."""
    if shutil.which(tmux.binary) is None:
        raise TmuxError("tmux is not installed (apt-get install tmux)")
    name = f"clauditor-{os.getpid()}"
    size = shutil.get_terminal_size((200, 50))
    command = shlex.join(
        [*self_command(), "watch", "--tmux", "--url", url, "--max-panes", str(pane_cap)]
    )
    tmux("new-session", "-d", "-s", name, "-x", str(size.columns), "-y", str(size.lines), command)
    if attach:
        os.execvp(tmux.binary, [tmux.binary, *tmux.server_args, "attach-session", "-t", name])
    print(f"clauditor: started tmux session {name}; attach with: tmux attach -t {name}")
    return 0


class PaneManager:
    """The panes this process opened, keyed by session id. Only they are ever closed."""

    def __init__(
        self,
        tmux: Tmux,
        url: str,
        overview_pane: str,
        *,
        cap: int = PANE_CAP,
        command: Sequence[str] | None = None,
    ) -> None:
        self.tmux = tmux
        self.url = url
        self.overview = overview_pane
        self.cap = cap
        self.command = list(command or self_command())
        self.panes: dict[str, str] = {}
        self.overflow: list[str] = []
        self.closed_by_hand: set[str] = set()
        self._checked = 0.0
        self.window = tmux("display-message", "-p", "-t", overview_pane, "#{window_id}")

    def setup(self) -> None:
        for option, value in (
            ("pane-border-status", "top"),
            ("pane-border-format", " #{pane_title} "),
        ):
            self.tmux("set-option", "-w", "-t", self.window, option, value, check=False)
        self.tmux("select-pane", "-t", self.overview, "-T", "clauditor · overview", check=False)

    def fits(self) -> int:
        """How many session panes the window holds readably (each at least MIN_PANE_COLS x
        MIN_PANE_ROWS beside the overview); the rest are listed in the overview."""
        size = self.tmux(
            "display-message", "-p", "-t", self.window, "#{window_width} #{window_height}",
            check=False,
        ).split()  # fmt: skip
        if len(size) != 2 or not all(x.isdigit() for x in size):
            return self.cap
        width, height = int(size[0]), int(size[1])
        rows = max(0, height - OVERVIEW_MIN_ROWS) // MIN_PANE_ROWS
        return max(1, min(self.cap, (width // MIN_PANE_COLS) * rows))

    def sync(self, state: WatchState) -> None:
        """Open a pane for each live session without one, while they fit."""
        cap = self.fits()
        for view in state.ordered():
            sid = view.session_id
            if view.status == "ended" or sid in self.panes or sid in self.closed_by_hand:
                continue
            if len(self.panes) >= cap and not self._free_an_ended_pane(state):
                continue
            self._open(sid, pane_title(view))
        live = [v for v in state.ordered() if v.status != "ended"]
        self.overflow = [v.name for v in live if v.session_id not in self.panes]
        now = time.monotonic()
        if self.panes and now - self._checked >= 2.0:
            # Panes closed by hand are forgotten (and not reopened: the session is marked).
            self._checked = now
            listed = self.tmux("list-panes", "-t", self.window, "-F", "#{pane_id}", check=False)
            alive = set(listed.split())
            for sid, pane in list(self.panes.items()):
                if pane not in alive:
                    del self.panes[sid]
                    self.closed_by_hand.add(sid)

    def _free_an_ended_pane(self, state: WatchState) -> bool:
        for sid, pane in list(self.panes.items()):
            view = state.sessions.get(sid)
            if view is not None and view.status == "ended":
                self.tmux("kill-pane", "-t", pane, check=False)
                del self.panes[sid]
                return True
        return False

    def _largest_pane(self) -> tuple[str, str]:
        out = self.tmux(
            "list-panes", "-t", self.window, "-F", "#{pane_id} #{pane_width} #{pane_height}"
        )
        best, best_area, flag = self.overview, -1, "-v"
        for line in out.splitlines():
            pane, width, height = line.split()
            if pane == self.overview and self.panes:
                continue  # the overview stays small once sessions have panes
            area = int(width) * int(height)
            if area > best_area:
                # Cells are about twice as tall as wide: split along the longer side.
                best, best_area = pane, area
                flag = "-h" if int(width) > 2 * int(height) else "-v"
        return best, flag

    def _open(self, session_id: str, title: str) -> None:
        target, flag = self._largest_pane()
        command = shlex.join([*self.command, "watch", "--session", session_id, "--url", self.url])
        try:
            pane = self.tmux(
                "split-window", "-d", flag, "-t", target, "-P", "-F", "#{pane_id}", command
            )
        except TmuxError:
            return  # no room left in the window: listed in the overview instead
        self.panes[session_id] = pane
        self.tmux("select-pane", "-t", pane, "-T", title, check=False)
        self.relayout()

    def relayout(self) -> None:
        if len(self.panes) <= TILED_ABOVE:
            height = self.tmux("display-message", "-p", "-t", self.window, "#{window_height}")
            overview = max(8, min(len(self.panes) + 9, int(height or 40) * 2 // 5))
            self.tmux("set-option", "-w", "-t", self.window, "main-pane-height", str(overview))
            self.tmux("select-layout", "-t", self.window, "main-horizontal", check=False)
        else:
            self.tmux("select-layout", "-t", self.window, "tiled", check=False)

    def close_all(self) -> None:
        for pane in self.panes.values():
            self.tmux("kill-pane", "-t", pane, check=False)
        self.panes.clear()


class PaneTitle:
    """A session pane keeps its own title current: name · model, then `· ended`."""

    def __init__(self, tmux: Tmux, pane: str, session_id: str) -> None:
        self.tmux = tmux
        self.pane = pane
        self.session_id = session_id
        self.last: str | None = None

    def __call__(self, state: WatchState) -> None:
        view = state.sessions.get(self.session_id)
        if view is None:
            return
        title = pane_title(view)
        if title != self.last:
            self.last = title
            self.tmux("select-pane", "-t", self.pane, "-T", title, check=False)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_overview(
    client: WatchClient,
    tmux: Tmux,
    *,
    cap: int = PANE_CAP,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> int:
    """Inside tmux: this pane is the overview; session panes come and go around it."""
    pane = os.environ.get("TMUX_PANE") or tmux("display-message", "-p", "#{pane_id}")
    manager = PaneManager(tmux, client.url, pane, cap=cap)
    manager.setup()
    # tmux kill-session sends SIGHUP; `kill` sends SIGTERM: clean up on both.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    try:
        return run_live(
            client,
            on_state=manager.sync,
            overflow=lambda: manager.overflow,
            title="clauditor watch --tmux",
            on_event=on_event,
        )
    finally:
        manager.close_all()


def session_pane_hook(session_id: str) -> PaneTitle | None:
    """When `watch --session` runs in a tmux pane, the pane title follows the session."""
    pane = os.environ.get("TMUX_PANE")
    if not pane or not os.environ.get("TMUX"):
        return None
    return PaneTitle(Tmux(), pane, session_id)
