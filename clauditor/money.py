"""US dollars: one rounding and one running total for every cost clauditor reports."""

from __future__ import annotations

from collections.abc import Mapping
from typing import overload

# Millionths of a dollar: a cache read of a few tokens costs that little, and the API,
# the store and /watch must show the same number for the same request.
USD_PLACES = 6
# Diagnosis findings quote amounts to a person: tenths of a cent read better there.
USD_BRIEF_PLACES = 4


@overload
def usd(value: float, places: int = USD_PLACES) -> float: ...
@overload
def usd(value: None, places: int = USD_PLACES) -> None: ...
@overload
def usd(value: float | None, places: int = USD_PLACES) -> float | None: ...
def usd(value: float | None, places: int = USD_PLACES) -> float | None:
    """A dollar amount rounded for output; None (unpriced) stays None, never 0.0."""
    return None if value is None else round(value, places)


def usd_by_key(value: Mapping[str, float] | None) -> dict[str, float] | None:
    """Each amount of a per-class (or per-day) breakdown rounded like ``usd``."""
    return None if value is None else {k: round(v, USD_PLACES) for k, v in value.items()}


def add_cost(total: float | None, amount: float | None) -> float | None:
    """A running total of priced amounts: None until something was priced."""
    if amount is None:
        return total
    return amount if total is None else total + amount
