"""Fixtures shared by the test packages."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def no_start(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The commands run up to the point where they would start listening; nothing binds."""
    seen: dict[str, Any] = {}

    def supervisor_run(self: Any, ready: Any = None) -> int:
        seen["up"] = self.config
        return 0

    async def core_serve(config: Any, clock: Any = None) -> None:
        seen["serve"] = config

    def demo(config: Any, **kw: Any) -> int:
        seen["demo"] = config
        return 0

    monkeypatch.setattr("clauditor.supervisor.Supervisor.run", supervisor_run)
    monkeypatch.setattr("clauditor.core.serve", core_serve)
    monkeypatch.setattr("clauditor.demo.run_demo", demo)
    monkeypatch.delenv("CLAUDITOR_ALLOW_NON_LOOPBACK", raising=False)
    return seen
