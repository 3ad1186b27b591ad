"""Every captured Claude Code session (tests/fixtures/claude-code-<version>/) replayed through
`clauditor up` (real Envoy, real core): each recorded request is sent as recorded, and the
fake upstream answers it with exactly the recorded response (content, tool ids, usage, SSE
error point, status). Compared with that capture's own truth (tests/compat/captures.py)."""

from __future__ import annotations

import pytest

from clauditor.sim.records import records_of
from clauditor.sim.replies import Reply
from clauditor.sim.server import FakeUpstream
from tests.compat.captures import capture_ids, load
from tests.compat.check import compare
from tests.compat.truth import session_of, wire_of
from tests.integration.stack import Stack, settled_detail

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("capture_id", capture_ids())
def test_capture_replayed_through_envoy_matches_its_truth(
    capture_id: str, stack: Stack, fake: FakeUpstream
) -> None:
    capture = load(capture_id)
    posts = [r for r in capture.records if r.get("method") == "POST"]
    for record in posts:
        fake.script(session_of(record) or "*", [Reply.from_record(record["response"])])
        response = stack.post_record(record)
        assert response.status_code == record["response"]["status"], response.text[:300]

    wire = wire_of(records_of(fake.exchanges), capture.truth.session_id)
    assert len(wire.requests) == len(posts)
    detail = settled_detail(stack, capture.truth.session_id, len(posts))
    result = compare(detail, capture.truth, wire, capture.expect)
    assert not result, result.text(f"{capture_id} replayed through Envoy:")
