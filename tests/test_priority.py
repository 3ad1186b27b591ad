"""The core's adaptive CPU priority: a fake setter stands in for setpriority."""

from __future__ import annotations

import errno

from clauditor.priority import CALM_SECONDS, LAG_HIGH, AdaptivePriority


class Setter:
    def __init__(self, refuse: bool = False) -> None:
        self.calls: list[int] = []
        self.refuse = refuse

    def __call__(self, nice: int) -> None:
        if self.refuse and nice < 19:
            raise PermissionError(errno.EACCES, "Permission denied")
        self.calls.append(nice)


def test_raised_while_lagging_and_back_after_keeping_up() -> None:
    setter = Setter()
    p = AdaptivePriority(19, 0, setter=setter, armed=True)
    p.observe(0.01, 0.0)
    assert setter.calls == []
    p.observe(LAG_HIGH + 0.1, 1.0)
    p.observe(2.0, 2.0)  # still behind: asked once
    assert setter.calls == [0] and p.stats()["nice"] == 0
    p.observe(0.01, 3.0)
    p.observe(0.01, 3.0 + CALM_SECONDS - 1)
    assert setter.calls == [0]  # not calm long enough
    p.observe(0.3, 3.0 + CALM_SECONDS)  # a new burst restarts the calm period
    p.observe(0.01, 4.0 + CALM_SECONDS)
    p.observe(0.01, 4.0 + 2 * CALM_SECONDS)
    assert setter.calls == [0, 19]
    assert p.stats() == {"idle_nice": 19, "lagging_nice": 0, "nice": 19, "raised": 1,
                         "denied": False, "loop_lag_ms": 10.0}  # fmt: skip


def test_refused_once_then_never_asked_again() -> None:
    setter = Setter(refuse=True)
    p = AdaptivePriority(19, 0, setter=setter, armed=True)
    p.observe(1.0, 0.0)
    p.observe(1.0, 1.0)
    assert p.denied and p.stats()["nice"] == 19 and setter.calls == []


def test_off_when_equal_or_not_armed() -> None:
    setter = Setter()
    AdaptivePriority(19, 19, setter=setter, armed=True).observe(5.0, 0.0)
    AdaptivePriority(19, 0, setter=setter).observe(5.0, 0.0)  # the core has not dropped yet
    assert setter.calls == []
