"""Session ids as people type them: the 8-character short id every list prints, or any
unique prefix of at least MIN_PREFIX characters, resolves to the full id."""

from __future__ import annotations

from collections.abc import Iterable

from clauditor.errors import ClauditorError

MIN_PREFIX = 4
CANDIDATES_SHOWN = 8
WHERE_LISTED = "`clauditor sessions` lists them"


class SessionIdError(ClauditorError, LookupError):
    """An id that names no session, or more than one; the message is one line."""


class UnknownSession(SessionIdError):
    pass


class AmbiguousSession(SessionIdError):
    def __init__(self, given: str, candidates: list[str]) -> None:
        self.candidates = candidates
        shown = ", ".join(candidates[:CANDIDATES_SHOWN])
        more = len(candidates) - CANDIDATES_SHOWN
        tail = f" and {more} more" if more > 0 else ""
        super().__init__(
            f"session id {given!r} is ambiguous: it starts {len(candidates)} sessions "
            f"({shown}{tail}); type more of it"
        )


def resolve_session_id(given: str, known: Iterable[str]) -> str:
    """The one session id in `known` that equals `given` or starts with it.

    `known` needs to hold only the ids that start with `given` (the store and the tracker
    filter first); an exact id always wins, even when it prefixes another.
    """
    given = given.strip()
    found = sorted(set(known))
    if given in found:
        return given
    if len(given) < MIN_PREFIX:
        raise UnknownSession(
            f"no session {given!r}: a short id needs at least {MIN_PREFIX} characters "
            f"({WHERE_LISTED})"
        )
    matching = [s for s in found if s.startswith(given)]
    if not matching:
        raise UnknownSession(f"no session {given!r} ({WHERE_LISTED})")
    if len(matching) > 1:
        raise AmbiguousSession(given, matching)
    return matching[0]
