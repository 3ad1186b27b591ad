"""Model fallback: a request answered by another model than the one asked for.

Server side, from the response (first match wins):
- response_model: the response's model is of another family than the requested one
  (families compare without a date suffix, -latest, [1m] or @version);
- iteration: usage.iterations holds a `fallback_message` entry (its model is the actual);
- fallback_block: the stream carried `fallback` content blocks.
Client side (`client`): Claude Code resent a turn's request (a retry) with another model
than the previous main-thread request of the same turn, as it does after repeated 529s
with --fallback-model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from clauditor.sessions.signals.prices import normalize_model


@dataclass(frozen=True, slots=True)
class Fallback:
    kind: str  # response_model | iteration | fallback_block | client
    requested: str | None
    actual: str | None


def same_family(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return True  # nothing to compare
    return normalize_model(a) == normalize_model(b)


def response_fallback(
    requested: str | None,
    responded: str | None,
    iterations: Sequence[dict[str, Any]],
    fallback_blocks: int,
) -> Fallback | None:
    if not same_family(requested, responded):
        return Fallback("response_model", requested, responded)
    for it in iterations:
        if it.get("type") == "fallback_message":
            model = it.get("model")
            actual = model if isinstance(model, str) else responded
            return Fallback("iteration", requested, actual)
    if fallback_blocks > 0:
        return Fallback("fallback_block", requested, responded)
    return None


def client_fallback(
    retry: bool, turn: int | None, model: str | None, last_turn: int | None, last_model: str | None
) -> Fallback | None:
    if retry and turn is not None and turn == last_turn and not same_family(last_model, model):
        return Fallback("client", last_model, model)
    return None
