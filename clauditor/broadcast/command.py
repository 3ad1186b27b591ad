"""`clauditor up --on-alert CMD`: each alert, as JSON on the standard input of CMD.

So a user can wire `notify-send`, a phone push or a sound to "this session needs you".
The command runs through the shell, in the background, bounded in time (killed after
`timeout` seconds) and in number (at most `concurrency` at once; an alert past that is
dropped and counted): a slow or hanging command never holds up the core.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from dataclasses import dataclass

from clauditor.sessions.alerts import Alert

log = logging.getLogger(__name__)


@dataclass
class CommandStats:
    ran: int = 0
    failed: int = 0  # exited non-zero, or could not start
    timed_out: int = 0
    dropped: int = 0  # too many already running


class AlertCommand:
    def __init__(self, command: str, *, timeout: float = 10.0, concurrency: int = 4) -> None:
        self.command = command
        self.timeout = timeout
        self.concurrency = concurrency
        self.stats = CommandStats()
        self._running: set[asyncio.Task[None]] = set()

    def __call__(self, alert: Alert) -> None:
        """An AlertEngine sink; called on the event loop."""
        if len(self._running) >= self.concurrency:
            self.stats.dropped += 1
            return
        task = asyncio.get_running_loop().create_task(self._run(alert))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, alert: Alert) -> None:
        payload = json.dumps(alert.as_api()).encode() + b"\n"
        try:
            proc = await asyncio.create_subprocess_shell(
                self.command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # its own process group: a timeout kills it whole
            )
        except OSError as exc:
            self.stats.failed += 1
            log.warning("--on-alert command could not start: %s", exc)
            return
        self.stats.ran += 1
        try:
            _, err = await asyncio.wait_for(proc.communicate(payload), self.timeout)
        except asyncio.TimeoutError:
            self.stats.timed_out += 1
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # the shell and what it started
            await proc.wait()
            log.warning("--on-alert command still running after %.0f s: killed", self.timeout)
            return
        if proc.returncode != 0:
            self.stats.failed += 1
            tail = (err or b"").decode("utf-8", "replace").strip()[-200:]
            log.warning("--on-alert command exited %s: %s", proc.returncode, tail)

    async def close(self) -> None:
        """Core stopping: let the running commands finish (they are bounded in time)."""
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
