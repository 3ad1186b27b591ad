"""The oracle itself, on the shared 2.1.332 captures, against numbers worked out by hand
from their `result` lines and the documented prices ($4 / $20 / $5 / $0.20 per MTok)."""

from __future__ import annotations

import copy
import json

import pytest

from tests.compat.captures import DOC_PRICES, FIXTURES
from tests.compat.clis import parse_bins
from tests.compat.truth import (
    TruthError,
    from_records,
    from_stream_json,
    read_stream_json,
    session_of,
    wire_of,
)

DIR = FIXTURES / "claude-code-2.1.332"


def runs(name: str, k: int = 0) -> list[list[dict]]:
    if not k:
        return [read_stream_json(DIR / f"{name}.stdout.jsonl")]
    return [read_stream_json(DIR / f"{name}.{i}.stdout.jsonl") for i in range(1, k + 1)]


def records(name: str) -> list[dict]:
    return [json.loads(x) for x in (DIR / f"{name}.jsonl").read_text().splitlines() if x]


def test_cumulative_runs_are_not_summed_twice() -> None:
    truth = from_stream_json(runs("n_compact", 3))
    assert truth.cumulative and truth.runs == 3 and truth.version == "2.1.332"
    (opus,) = truth.models.values()
    assert opus.tokens() == {
        "input": 35 + 1669 + 1768 + 35,
        "output": 11 * 4,
        "cache_read": 0 + 12262 + 12274 + 12274,
        "cache_creation": 12262 + 12 + 0 + 334,
    }
    # 3507 x 4 + 44 x 20 + 36810 x 0.20 + 12608 x 5 (no 1h writes), per million.
    assert truth.total_cost_usd == pytest.approx(0.08531, rel=1e-9)
    assert truth.compact_boundaries == 1 and truth.context_window == 1_000_000


def test_aborted_stream_is_not_in_2_1_332_accounting() -> None:
    truth = from_stream_json(runs("n_sse_error"))
    assert truth.models["claude-opus-5-5"].tokens() == {
        "input": 35, "output": 11, "cache_read": 12263, "cache_creation": 0,
    }  # fmt: skip
    assert truth.total_cost_usd == pytest.approx((35 * 4 + 11 * 20 + 12263 * 0.2) / 1e6)
    wire = wire_of(records("n_sse_error"), truth.session_id)
    assert [(r.complete, r.aborted, r.stream) for r in wire.requests] == [
        (False, True, True),
        (True, False, False),
    ]
    assert len(wire.counted("2.1.332")) == len(wire.counted("2.1.197")) == 1  # non-stream resend


def test_background_subagent_truth() -> None:
    truth = from_stream_json(runs("n_subagent_bg"))
    assert (truth.runs, truth.results) == (1, 2)
    assert truth.tasks == {"ae689e2e121c15067": "toolu_01oDySwo4KAbq7IFd39cnUC8"}
    assert dict(truth.tool_uses) == {"Agent": 1}
    wire = wire_of(records("n_subagent_bg"), truth.session_id)
    assert [r.kind for r in wire.requests] == ["main", "main", "subagent", "main"]


def test_per_run_accounting_is_summed() -> None:
    """2.1.197 style: no model_usage_since_last_result, each run reports itself alone."""
    one, two = runs("n_compact", 3)[0], copy.deepcopy(runs("n_compact", 3)[0])
    for run in (one, two):
        for e in run:
            if e.get("type") == "result":
                e.pop("model_usage_since_last_result", None)
    truth = from_stream_json([one, two])
    assert not truth.cumulative
    assert truth.models["claude-opus-5-5"].input == 70
    assert truth.total_cost_usd == pytest.approx(2 * 0.06167)


def test_inconsistent_oracle_is_an_error() -> None:
    broken = copy.deepcopy(runs("n_compact", 3))
    result = next(e for e in broken[2] if e.get("type") == "result")
    result["modelUsage"]["claude-opus-5-5"]["inputTokens"] += 1
    with pytest.raises(TruthError):
        from_stream_json(broken)
    with pytest.raises(TruthError):
        from_stream_json([runs("n_plain")[0], runs("n_tool")[0]])  # two sessions


def test_hand_computed_truth_of_the_interactive_capture() -> None:
    recs = records("n_interactive")
    (sid,) = {session_of(r) for r in recs}
    truth = from_records(recs, str(sid), DOC_PRICES, "2.1.332")
    assert truth.models["claude-opus-5-5"].tokens() == {
        "input": 35, "output": 11, "cache_read": 0, "cache_creation": 13797,
    }  # fmt: skip
    assert truth.total_cost_usd == pytest.approx((35 * 4 + 11 * 20 + 13797 * 5) / 1e6)


def test_claude_bins() -> None:
    assert parse_bins("2.1.197=/a/claude, 2.1.332=/b/claude,,junk") == {
        "2.1.197": "/a/claude",
        "2.1.332": "/b/claude",
    }
