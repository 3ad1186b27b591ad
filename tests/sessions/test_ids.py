"""Short session ids: a unique prefix of at least 4 characters names a session."""

from __future__ import annotations

import pytest

from clauditor.sessions.ids import AmbiguousSession, UnknownSession, resolve_session_id

A = "da3a0740-1111-4000-8000-000000000001"
B = "da3a0740-2222-4000-8000-000000000002"
C = "5e55a0e1-0000-4000-8000-00000000c0de"


def test_a_unique_prefix_resolves() -> None:
    assert resolve_session_id("5e55a0e1", [C]) == C
    assert resolve_session_id("5e55", [C]) == C
    assert resolve_session_id(f"  {C} ", [C]) == C
    assert resolve_session_id("da3a0740-2", [A, B]) == B


def test_an_exact_id_wins_even_when_it_prefixes_another() -> None:
    assert resolve_session_id("abcd", ["abcd", "abcdef"]) == "abcd"


def test_ambiguous_prefix_lists_the_candidates() -> None:
    with pytest.raises(AmbiguousSession) as info:
        resolve_session_id("da3a0740", [B, A])
    assert info.value.candidates == [A, B]
    assert str(info.value) == (
        f"session id 'da3a0740' is ambiguous: it starts 2 sessions ({A}, {B}); type more of it"
    )


def test_unknown_or_too_short_says_where_ids_are_listed() -> None:
    with pytest.raises(UnknownSession, match=r"no session 'ffff' \(`clauditor sessions` lists"):
        resolve_session_id("ffff", [A])
    with pytest.raises(UnknownSession, match="at least 4 characters"):
        resolve_session_id("da3", [A])
