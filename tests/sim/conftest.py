"""Fixtures for the fake upstream and synthetic client tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from clauditor.sim.server import FakeUpstream


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    up = FakeUpstream()
    await up.start()
    try:
        yield up
    finally:
        await up.stop()
