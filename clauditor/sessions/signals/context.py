"""Context pressure: fill of the window, the compaction threshold, turns left before it.

- Context of a main-thread request = input + cache_read + cache_creation of its response
  (output excluded); fill = context / window (see PriceTable.context_window).
- Compaction threshold, until one is observed: Claude Code's documented formula
  window - min(max output, 20k) - 13k, i.e. 167,000 on a 200k window and 967,000 on 1M.
  Learned per model (family) from compactions seen on the wire: a compaction request
  followed by a continuation turn teaches the compaction request's input (input +
  cache_read + cache_creation: the whole conversation it summarised, i.e. the context that
  set it off); the threshold is the highest of the last LEARNED_KEPT such observations (a
  manual /compact early in a session cannot pull it below a later automatic one).
- Turns to compact = floor((threshold - context now) / growth per turn), where growth is
  the average increase of the context at the end of the last GROWTH_TURNS completed turns
  (since the last compaction); None until two turns ended or while the context shrinks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

AUTOCOMPACT_BUFFER = 13_000
MAX_OUTPUT_RESERVE = 20_000
GROWTH_TURNS = 5  # growth is averaged over up to this many turns (GROWTH_TURNS + 1 samples)
LEARNED_KEPT = 5


def default_threshold(window: int, max_tokens: int | None = None) -> int:
    reserve = min(max_tokens or MAX_OUTPUT_RESERVE, MAX_OUTPUT_RESERVE)
    return window - reserve - AUTOCOMPACT_BUFFER


def growth_per_turn(turn_end_contexts: Sequence[int]) -> float | None:
    samples = list(turn_end_contexts)[-(GROWTH_TURNS + 1) :]
    if len(samples) < 2:
        return None
    return (samples[-1] - samples[0]) / (len(samples) - 1)


def turns_to_compact(context: int, threshold: int, growth: float | None) -> int | None:
    if growth is None or growth <= 0:
        return None
    return max(0, math.floor((threshold - context) / growth))


class CompactionThresholds:
    """Learned thresholds per model family, shared by all sessions."""

    def __init__(self) -> None:
        self.observed: dict[str, list[int]] = {}

    def learn(self, model: str, context_tokens: int) -> None:
        seen = self.observed.setdefault(model, [])
        seen.append(context_tokens)
        del seen[:-LEARNED_KEPT]

    def learned(self, model: str | None) -> int | None:
        seen = self.observed.get(model or "")
        return max(seen) if seen else None

    def threshold(self, model: str | None, window: int, max_tokens: int | None) -> int:
        learned = self.learned(model)
        return learned if learned is not None else default_threshold(window, max_tokens)
