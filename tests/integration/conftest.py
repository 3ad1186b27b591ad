from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clauditor.testing.fake_upstream import FakeUpstream
from tests.integration.stack import Stack, start_stack


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
