"""Anthropic-shaped random ids (request, message, tool_use): the lengths and prefixes the
real API uses, so parsers and redaction rules see realistic values."""

from __future__ import annotations

import random
import string

__all__ = ["new_message_id", "new_request_id", "new_tool_use_id"]

_ALNUM = string.ascii_letters + string.digits
# A module attribute, not a local: tests swap in a seeded generator to pin the bytes.
_rng: random.Random = random.SystemRandom()


def _rand(n: int) -> str:
    return "".join(_rng.choice(_ALNUM) for _ in range(n))


def new_tool_use_id() -> str:
    return "toolu_01" + _rand(22)


def new_message_id() -> str:
    return "msg_01" + _rand(22)


def new_request_id() -> str:
    return "req_011C" + _rand(20)
