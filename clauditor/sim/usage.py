"""The fake's deterministic usage: prompt tokens ≈ len(body) // 4, and prompt caching
simulated per (session, model). A request without any cache_control marker caches
nothing; with one, the first request writes ~90% of the prompt to the cache, later ones
read what was written and write ~90% of the growth. A `ttl: 1h` marker makes the write a
1-hour one. Output tokens are counted where the message is planned (`message`)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["PromptCache"]


def _iter_cache_controls(obj: Any, depth: int = 0) -> Iterator[dict[str, Any]]:
    if depth > 64:  # request JSON is attacker-shaped in principle; keep recursion bounded
        return
    if isinstance(obj, dict):
        cc = obj.get("cache_control")
        if isinstance(cc, dict):
            yield cc
        for v in obj.values():
            yield from _iter_cache_controls(v, depth + 1)
    elif isinstance(obj, list):
        for v in obj:
            yield from _iter_cache_controls(v, depth + 1)


class PromptCache:
    """The cached prefix of each (session, model), in tokens; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cached: dict[tuple[str, str], int] = {}  # (session, model) → cached tokens

    def reset(self) -> None:
        with self._lock:
            self._cached.clear()

    def usage(
        self, session: str | None, model: str, payload: dict[str, Any], body: bytes
    ) -> dict[str, Any]:
        """The usage of a request (output_tokens 1: the message_start form)."""
        estimate = max(1, len(body) // 4)
        marks = list(_iter_cache_controls(payload))
        if not marks:
            read = write = 0
            fresh = estimate
        else:
            key = (session or "", model)
            with self._lock:
                read = min(self._cached.get(key, 0), estimate)
                growth = estimate - read
                write = growth * 9 // 10
                fresh = growth - write
                self._cached[key] = read + write
        one_hour = any(m.get("ttl") == "1h" for m in marks)
        return {
            "input_tokens": fresh,
            "cache_creation_input_tokens": write,
            "cache_read_input_tokens": read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": 0 if one_hour else write,
                "ephemeral_1h_input_tokens": write if one_hour else 0,
            },
            "output_tokens": 1,
            "service_tier": "standard",
        }
