"""Sessions as the API answers them: the live ones (the tracker's) and the stored ones (the
database's) as one collection, with one shape.

A live session's detail is its stored detail (the writer flushed first) with the live
objects laid over it: the tracker keeps only what it still needs (pending tool calls, the
newest requests, the turns since a restart), the database keeps everything. So a live and
a stored session list the same turns, requests and tool calls, before and after a core
restart. Unit-tested without a Core: it depends on two small protocols.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from clauditor.clock import Clock, iso
from clauditor.sessions.ids import resolve_session_id
from clauditor.sessions.models import RequestRecord, Session, ToolCall


class LiveSessions(Protocol):
    """What the tracker offers (sessions.tracker.SessionTracker)."""

    @property
    def sessions(self) -> Mapping[str, Session]: ...
    def recent_requests(self, session_id: str) -> list[RequestRecord]: ...
    def pending_tools(self, session_id: str) -> list[ToolCall]: ...


class StoredSessions(Protocol):
    """What the store offers (store.store.Store)."""

    async def list_sessions(
        self, limit: int = 50, days: float | None = None, status: str | None = None
    ) -> list[dict[str, Any]]: ...
    async def session_detail(
        self, session_id: str, *, fresh: bool = False
    ) -> dict[str, Any] | None: ...
    async def findings_counts(self, ids: list[str]) -> dict[str, int]: ...
    async def ids_with_prefix(self, prefix: str) -> list[str]: ...


def _by(items: list[dict[str, Any]], key: str) -> dict[Any, dict[str, Any]]:
    return {item.get(key): item for item in items}


def _overlay(
    stored: list[dict[str, Any]], live: list[dict[str, Any]], key: str, order: str
) -> list[dict[str, Any]]:
    """The stored items with the live ones in their place (same `key`), sorted by `order`."""
    merged = {**_by(stored, key), **_by(live, key)}
    return sorted(merged.values(), key=lambda item: _sort_key(item.get(order)))


def _sort_key(value: Any) -> tuple[bool, Any]:
    return (value is None, "" if value is None else value)  # the unknown last


@dataclass
class SessionQueries:
    live: LiveSessions
    stored: StoredSessions
    clock: Clock

    def cutoff_iso(self, days: float | None) -> str | None:
        """The ISO time `days` ago (None: no cutoff)."""
        if days is None:
            return None
        since = datetime.fromtimestamp(self.clock.now(), timezone.utc) - timedelta(days=days)
        return iso(since.timestamp())

    async def resolve(self, given: str) -> str:
        """The full id of the session `given` names (a full id or a unique prefix of at
        least 4 characters), live or stored; raises UnknownSession / AmbiguousSession."""
        if given in self.live.sessions:
            return given
        live = [s for s in self.live.sessions if s.startswith(given.strip())]
        stored = await self.stored.ids_with_prefix(given) if len(given.strip()) >= 4 else []
        return resolve_session_id(given, [*live, *stored])

    async def sessions(
        self, limit: int = 50, days: float | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        """Live and stored, newest activity first, each with its findings count."""
        cutoff = self.cutoff_iso(days)
        live = [
            s.as_api()
            for s in list(self.live.sessions.values())
            if status is None or s.status == status
        ]
        live = [s for s in live if cutoff is None or (s["last_activity_at"] or "") >= cutoff]
        seen = {s["session_id"] for s in live}
        stored = await self.stored.list_sessions(limit=limit + len(seen), days=days, status=status)
        merged = live + [s for s in stored if s["session_id"] not in seen]
        merged.sort(key=lambda s: s["last_activity_at"] or "", reverse=True)
        merged = merged[:limit]
        missing = [s["session_id"] for s in merged if s.get("findings") is None]
        counts = await self.stored.findings_counts(missing)
        for s in merged:
            if s.get("findings") is None:
                s["findings"] = counts.get(s["session_id"], 0)
        return merged

    async def detail(self, session_id: str) -> dict[str, Any] | None:
        """One session (a full id) with all its turns, requests and tool calls."""
        session = self.live.sessions.get(session_id)
        stored = await self.stored.session_detail(session_id, fresh=session is not None)
        if session is None:
            return stored
        base = stored or {"session": {}, "turns": [], "requests": [], "tool_calls": []}
        turns = [t.as_api() for t in session.turns]
        requests = [r.as_api() for r in self.live.recent_requests(session_id)]
        pending = [c.as_api() for c in self.live.pending_tools(session_id)]
        return {
            "session": session.as_api(),
            "turns": _overlay(base["turns"], turns, "turn", "turn"),
            "requests": _overlay(base["requests"], requests, "uid", "started_at"),
            "tool_calls": _overlay(base["tool_calls"], pending, "tool_use_id", "requested_at"),
        }
