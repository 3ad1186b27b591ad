"""`clauditor watch --plain` (or no TTY): one timestamped, greppable line per event."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from clauditor.watch.client import BackgroundClient, WatchClient
from clauditor.watch.render import plain_line


def run_plain(
    client: WatchClient,
    out: TextIO,
    err: TextIO | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    history: Sequence[dict[str, Any]] = (),
) -> int:
    """Events to `out` (first the history of a session opened late), connection news to
    `err`, until Ctrl-C or a closed pipe."""
    err = err or sys.stderr
    for event in history:
        out.write(plain_line(event) + "\n")
    background = BackgroundClient(client).start()
    try:
        while True:
            events = background.drain(0.5)
            for event in events:
                if event.get("type") == "connection":
                    state = event.get("state")
                    detail = f" ({event['error']})" if event.get("error") else ""
                    retry = event.get("retry_in")
                    when = f" in {retry:.1f}s" if isinstance(retry, (int, float)) else ""
                    err.write(f"clauditor watch: {state}{when}{detail}\n")
                    err.flush()
                    if state == "failed":
                        return 1
                    continue
                out.write(plain_line(event) + "\n")
                if on_event is not None:
                    on_event(event)
            if events:
                out.flush()
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # `clauditor watch | head`
        return 0
    finally:
        background.close()
