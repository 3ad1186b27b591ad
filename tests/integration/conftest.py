from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from clauditor.sim.server import FakeUpstream
from tests.compat.clis import Cli, configured, usable
from tests.integration.stack import Stack, start_stack


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test taking `claude_cli` runs once per configured Claude Code version."""
    if "claude_cli" in metafunc.fixturenames:
        clis = configured()
        metafunc.parametrize(
            "claude_cli", clis, ids=[f"cc{c.version}" for c in clis], indirect=True
        )


@pytest.fixture
def claude_cli(request: pytest.FixtureRequest) -> Cli:
    """The Claude Code CLI of this parameter (skips, or fails in CI, when it is missing)."""
    return usable(request.param)


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream().running_in_thread() as upstream:
        yield upstream


@pytest.fixture
def stack(fake: FakeUpstream, tmp_path: Path) -> Iterator[Stack]:
    running = start_stack(fake.url, tmp_path)
    try:
        yield running
    finally:
        code = running.stop()
        assert code == 0, "\n".join(running.log[-30:])


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop for a whole test: a session's connections live across its turns."""
    made = asyncio.new_event_loop()
    try:
        yield made
    finally:
        made.close()
