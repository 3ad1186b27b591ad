"""The Rich `Live` dashboard loop: drain events, fold them into the state, redraw."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from rich.console import Console, RenderableType
from rich.live import Live

from clauditor.watch.client import BackgroundClient, WatchClient
from clauditor.watch.render import render_dashboard, render_session
from clauditor.watch.state import WatchState

FRAME = 0.1  # at most ten redraws a second, and at least four (countdowns tick)


def run_live(
    client: WatchClient,
    *,
    session_id: str | None = None,
    console: Console | None = None,
    on_state: Callable[[WatchState], None] | None = None,
    overflow: Callable[[], Sequence[str]] = tuple,
    title: str = "clauditor watch",
    on_event: Callable[[dict[str, Any]], None] | None = None,
    history: Sequence[dict[str, Any]] = (),
) -> int:
    console = console or Console()
    state = WatchState(session_filter=session_id)
    for event in history:  # what happened before this view opened
        state.apply(event)
    tz = datetime.now().astimezone().tzinfo  # the feed shows local wall time

    def view() -> RenderableType:
        # Size read at every frame: a resized terminal is redrawn to its new size.
        width, height = console.size
        now = time.time()
        if session_id is not None:
            return render_session(
                state, session_id, now, height=height, width=width, url=client.url, tz=tz
            )
        return render_dashboard(
            state,
            now,
            height=height,
            width=width,
            url=client.url,
            tz=tz,
            overflow=overflow(),
            title=title,
        )

    background = BackgroundClient(client).start()
    try:
        with Live(
            view(),
            console=console,
            screen=True,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        ) as live:
            next_frame = last_frame = 0.0
            dirty = False
            while True:
                wait = max(0.0, next_frame - time.monotonic()) if dirty else 0.25
                events = background.drain(wait)
                for event in events:
                    state.apply(event)
                    if on_event is not None:
                        on_event(event)
                dirty = dirty or bool(events)
                now = time.monotonic()
                if now >= next_frame and (dirty or now - last_frame >= 0.25):
                    if on_state is not None:
                        on_state(state)
                    live.update(view(), refresh=True)
                    dirty, last_frame, next_frame = False, now, now + FRAME
    except KeyboardInterrupt:
        return 0
    finally:
        background.close()
