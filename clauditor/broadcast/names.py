"""Short, human display names for sessions (shared by the hub and the watch client)."""

from __future__ import annotations

import re

# Tags and [[...]] markers are machinery, not what the user asked.
_NOISE = re.compile(r"\[\[.*?\]\]|<[^>]{1,80}>", re.S)


def short_id(session_id: str | None) -> str:
    return (session_id or "?")[:8]


def display_name(prompt: str | None, session_id: str | None, limit: int = 28) -> str:
    """The first words of the first prompt (cut at a word boundary), else the short id."""
    text = " ".join(_NOISE.sub(" ", prompt or "").split())
    if not text:
        return short_id(session_id)
    if len(text) <= limit:
        return text
    cut = text[: limit + 1].rsplit(" ", 1)[0].rstrip(" :,;.-")
    if not cut or len(cut) > limit:
        return text[: limit - 1] + "…"
    return cut
