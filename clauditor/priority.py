"""The core's CPU priority: lowest while it keeps up, higher while it lags behind.

At nice 19 the core only gets the CPU nobody else wants, which is right while it keeps
up (it watches traffic, it never carries it). On a saturated machine it then lags, and
past Envoy's hold (deferred_close_timeout) what it has not read is lost: 64 busy
sessions on 2 cores captured ~20 % of exchanges at nice 19 and all of them at nice 0
(docs/performance.md, section 10). So while the event loop lags, the core asks for
`lagging_nice`, and goes back to `idle_nice` once it has kept up for a while.

Lowering a niceness needs CAP_SYS_NICE or a RLIMIT_NICE that allows it (`ulimit -e`,
0 for most users): without them the first attempt fails, is logged once, and the core
stays at `idle_nice` (counted in /api/stats `priority.denied`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

LAG_HIGH = 0.25  # seconds the 1 s ticker fired late: the core is behind
LAG_CALM = 0.05  # ... and below this it is keeping up
CALM_SECONDS = 10.0  # kept up this long before dropping back to the idle niceness


def set_thread_nice(nice: int) -> None:
    """Every thread of this process to exactly `nice` (Linux keeps niceness per thread).
    Raises OSError (EACCES / EPERM) when lowering it is not allowed."""
    task_dir = Path("/proc/self/task")
    tids = [int(t.name) for t in task_dir.iterdir()] if task_dir.is_dir() else [0]
    for tid in tids:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
        except ProcessLookupError:  # a thread that just ended
            continue


@dataclass
class AdaptivePriority:
    idle_nice: int
    lagging_nice: int
    setter: Callable[[int], None] = set_thread_nice
    current: int | None = None  # None until the first change: the core's own start nice
    raised: int = 0  # times it went to lagging_nice
    denied: bool = False  # the OS refused: never asked again
    last_lag: float = 0.0
    armed: bool = False  # set once the core dropped to idle_nice (it starts at its own)
    _calm_since: float | None = None

    @property
    def enabled(self) -> bool:
        return self.lagging_nice < self.idle_nice and hasattr(os, "setpriority")

    def observe(self, lag: float, now: float) -> None:
        """One tick: `lag` is how late the ticker fired (s), `now` a monotonic time."""
        self.last_lag = lag
        if not self.enabled or self.denied or not self.armed:
            return
        lagging = self.current == self.lagging_nice
        if not lagging and lag >= LAG_HIGH:
            try:
                self.setter(self.lagging_nice)
            except OSError as exc:
                self.denied = True
                log.warning(
                    "the core lags %.1f s behind but may not raise its CPU priority to nice "
                    "%d (%s): it stays at %d; CAP_SYS_NICE or `ulimit -e` would allow it",
                    lag,
                    self.lagging_nice,
                    exc.strerror,
                    self.idle_nice,
                )
                return
            self.current, self.raised, self._calm_since = self.lagging_nice, self.raised + 1, None
        elif lagging:
            if lag >= LAG_CALM:
                self._calm_since = None
            elif self._calm_since is None:
                self._calm_since = now
            elif now - self._calm_since >= CALM_SECONDS:
                self.setter(self.idle_nice)  # raising a niceness is always allowed
                self.current, self._calm_since = self.idle_nice, None

    def stats(self) -> dict[str, object]:
        return {
            "idle_nice": self.idle_nice,
            "lagging_nice": self.lagging_nice,
            "nice": self.idle_nice if self.current is None else self.current,
            "raised": self.raised,
            "denied": self.denied,
            "loop_lag_ms": round(self.last_lag * 1000, 1),
        }
