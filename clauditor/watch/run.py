"""`clauditor watch`: pick the view (dashboard, one session, plain lines, tmux panes)."""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

from clauditor.watch.client import WatchClient, WatchUnavailable
from clauditor.watch.history import history_events
from clauditor.watch.notify import Notifier
from clauditor.watch.tmux import PANE_CAP, Tmux, TmuxError

__all__ = ["TmuxError", "WatchUnavailable", "run_watch"]


def run_watch(
    url: str,
    session_id: str | None = None,
    *,
    tmux: bool = False,
    plain: bool = False,
    max_panes: int = PANE_CAP,
    notify: bool = False,
    out: TextIO | None = None,
) -> int:
    """Raises WatchUnavailable when the core cannot be reached at start (later outages
    are retried with backoff and shown on screen), TmuxError when tmux fails."""
    out = out or sys.stdout
    # --notify: alerts ring the bell (on stderr when stdout is piped: never in the data).
    notifier = Notifier(out if out.isatty() else sys.stderr) if notify else None
    client = WatchClient(url, session_id)
    client.check()
    client.resolve()
    session_id = client.session_id
    # A pane opened for a session that is not new starts with what it already did.
    history = history_events(client.detail, time.time()) if client.detail else []
    if tmux and session_id is None:
        from clauditor.watch.tmux import bootstrap, run_overview

        if not os.environ.get("TMUX"):
            return bootstrap(client.url, Tmux(), attach=out.isatty(), pane_cap=max_panes)
        return run_overview(client, Tmux(), cap=max_panes, on_event=notifier)
    if plain or not out.isatty():
        from clauditor.watch.plain import run_plain

        return run_plain(client, out, on_event=notifier, history=history)
    from clauditor.watch.live import run_live
    from clauditor.watch.tmux import session_pane_hook

    hook = session_pane_hook(session_id) if session_id else None
    return run_live(
        client, session_id=session_id, on_state=hook, on_event=notifier, history=history
    )
