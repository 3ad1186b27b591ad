"""The turn time breakdown on hand-built timelines: expected parts computed by hand."""

from __future__ import annotations

import pytest

from clauditor.sessions.timing import TIME_PARTS, Segment, breakdown, shares


def _ms(**parts: float) -> dict[str, float]:
    return {p: parts.get(p.removesuffix("_ms"), 0.0) for p in TIME_PARTS}


def test_a_three_second_tool_between_two_responses() -> None:
    got = breakdown(
        0.0,
        10.0,
        [
            Segment(0.0, 3.0, first_token=1.0, asked_tools=True),
            Segment(6.0, 10.0, first_token=7.0),
        ],
    )
    assert got == _ms(waiting_for_model=2000.0, generating=5000.0, tools=3000.0)


def test_a_529_then_success_is_retry_time_including_the_backoff() -> None:
    got = breakdown(
        0.0,
        5.0,
        [Segment(0.0, 0.5, failed=True), Segment(2.5, 5.0, first_token=3.0)],
    )
    assert got == _ms(retries=2500.0, waiting_for_model=500.0, generating=2000.0)


def test_a_permission_prompt_inside_the_tool_gap_is_your_time() -> None:
    got = breakdown(
        0.0,
        9.0,
        [
            Segment(0.0, 2.0, first_token=0.5, asked_tools=True),
            Segment(8.0, 9.0, first_token=8.2),
        ],
        waits=[(2.5, 6.5)],
    )
    assert got == _ms(
        waiting_for_model=700.0, generating=2300.0, waiting_for_you=4000.0, tools=2000.0
    )


def test_foreground_subagents_count_once_and_cover_parallel_tools() -> None:
    # Two Agent runs in parallel (1-4 s, 2-5 s) and a Bash call (1-3 s) under them.
    got = breakdown(
        0.0,
        6.0,
        [
            Segment(0.0, 1.0, first_token=0.2, asked_tools=True),
            Segment(5.0, 6.0, first_token=5.5),
        ],
        subagents=[(1.0, 4.0), (2.0, 5.0)],
    )
    assert got == _ms(waiting_for_model=700.0, generating=1300.0, subagents=4000.0)


def test_a_wait_during_a_subagent_run_is_yours_and_the_rest_is_the_subagent() -> None:
    got = breakdown(
        0.0,
        6.0,
        [Segment(0.0, 1.0, asked_tools=True), Segment(5.0, 6.0)],
        subagents=[(1.0, 5.0)],
        waits=[(2.0, 3.0)],
    )
    # Unstreamed answers: the whole request is waiting for the model.
    assert got == _ms(waiting_for_model=2000.0, subagents=3000.0, waiting_for_you=1000.0)


def test_intervals_outside_the_turn_are_clipped_and_gaps_follow_the_last_response() -> None:
    got = breakdown(
        1.0,
        4.0,
        [Segment(0.5, 2.0, first_token=1.5)],  # started before the turn's own start
        waits=[(3.5, 9.0)],
    )
    # 1.0-1.5 model, 1.5-2.0 generating, 2.0-3.5 after a plain answer: the model.
    assert got == _ms(waiting_for_model=2000.0, generating=500.0, waiting_for_you=500.0)


def test_parts_add_up_to_the_duration_as_rounded() -> None:
    start, end = 1000.0001, 1007.3337
    got = breakdown(
        start,
        end,
        [
            Segment(1000.0001, 1001.11111, first_token=1000.33333, asked_tools=True),
            Segment(1004.77777, 1007.3337, first_token=1005.0),
        ],
    )
    assert sum(got.values()) == pytest.approx(round((end - start) * 1000, 3), abs=1e-9)
    assert got["tools_ms"] == pytest.approx(3666.66, abs=0.002)


def test_an_empty_or_inverted_turn_is_all_zero() -> None:
    assert breakdown(5.0, 5.0, []) == _ms()
    assert breakdown(5.0, 4.0, [Segment(4.0, 5.0)]) == _ms()


def test_shares() -> None:
    assert shares({"a": 300.0, "b": 100.0, "c": None}) == {"a": 0.75, "b": 0.25, "c": 0.0}
    assert shares({"a": 0.0}) == {"a": 0.0}
