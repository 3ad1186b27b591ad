"""The price table: USD per million tokens and the context window of each model, as data.

The packaged table is clauditor/data/prices.json; `--prices FILE` (JSON, or TOML on
Python >= 3.11) merges a user's entries over it, or replaces it with `"replace": true`.

Matching: a model id matches an entry when it equals the entry's id or continues it with
only a date (`-20251101`), `-latest`, a `[1m]` tag or an `@version`; the longest such entry
wins. `claude-opus-4-9` does not match `claude-opus-4`: an unknown model is unpriced (cost
None), never priced by a guess.

Cost = input x input + output x output + cache_read x cache_read
       + 5m writes x cache_write_5m + 1h writes x cache_write_1h   (per million tokens),
with the 5m/1h split from usage.cache_creation. An entry's optional `long_context` rule
({"above_input_tokens": N, <the five rates>}) prices every token of a request whose input
(input + cache_read + cache_creation) exceeds N at its rates instead.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from clauditor.sessions.models import TokenCounts

PER_TOKENS = 1_000_000
DEFAULT_WINDOW = 200_000
WINDOW_1M = 1_000_000
RATE_NAMES = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")

# What may follow a table id in a model id: a date, -latest, a [1m] tag, a Vertex @version.
_SUFFIX = re.compile(r"(?:-\d{8})?(?:-latest)?(?:\[[0-9a-z]+\])?(?:@[\w.:-]+)?")
_TRAILING = re.compile(r"(?:\[[0-9a-z]+\])?(?:@[\w.:-]+)?$")
_DATED = re.compile(r"(?:-\d{8}|-latest)$")


class PriceError(ValueError):
    """A price file that cannot be used; the message is one line for the user."""


def normalize_model(model: str) -> str:
    """The model family: without a date, -latest, [1m] tag or @version suffix."""
    base = _TRAILING.sub("", model.strip())
    return _DATED.sub("", base)


@dataclass(frozen=True, slots=True)
class Rates:
    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float

    def write(self, ttl_seconds: int) -> float:
        return self.cache_write_1h if ttl_seconds >= 3600 else self.cache_write_5m


@dataclass(frozen=True, slots=True)
class LongContext:
    above_input_tokens: int
    rates: Rates


@dataclass(frozen=True, slots=True)
class ModelPrice:
    model: str  # the table id
    rates: Rates
    context_window: int
    context_window_1m_beta: int | None = None  # with the context-1m-... beta
    long_context: LongContext | None = None

    def rates_for(self, total_input: int) -> Rates:
        lc = self.long_context
        if lc is not None and total_input > lc.above_input_tokens:
            return lc.rates
        return self.rates


def _number(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PriceError(f"{where}: expected a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise PriceError(f"{where}: expected a non-negative number, got {value!r}")
    return float(value)


def _tokens(where: str, value: Any) -> int:
    if type(value) is not int or value <= 0:
        raise PriceError(f"{where}: expected a positive whole number of tokens, got {value!r}")
    return value


def _rates(where: str, obj: Mapping[str, Any]) -> Rates:
    missing = [k for k in RATE_NAMES if k not in obj]
    if missing:
        raise PriceError(f"{where}: missing {', '.join(missing)}")
    return Rates(*(_number(f"{where}.{k}", obj[k]) for k in RATE_NAMES))


def _entry(model: str, obj: Any) -> ModelPrice:
    where = f"models.{model}"
    if not isinstance(obj, dict):
        raise PriceError(f"{where}: expected an object")
    window = _tokens(f"{where}.context_window", obj.get("context_window", DEFAULT_WINDOW))
    beta = obj.get("context_window_1m_beta")
    lc = obj.get("long_context")
    long_context = None
    if lc is not None:
        if not isinstance(lc, dict):
            raise PriceError(f"{where}.long_context: expected an object")
        above = _tokens(f"{where}.long_context.above_input_tokens", lc.get("above_input_tokens"))
        long_context = LongContext(above, _rates(f"{where}.long_context", lc))
    return ModelPrice(
        model=model,
        rates=_rates(where, obj),
        context_window=window,
        context_window_1m_beta=None if beta is None else _tokens(f"{where}.beta", beta),
        long_context=long_context,
    )


class PriceTable:
    def __init__(self, models: Iterable[ModelPrice], source: str = "packaged") -> None:
        self.models: dict[str, ModelPrice] = {m.model: m for m in models}
        self.source = source
        # Longest id first, so claude-opus-4-5 is tried before claude-opus-4.
        self._ordered = sorted(self.models.values(), key=lambda m: len(m.model), reverse=True)

    @classmethod
    def from_dict(cls, data: Any, source: str) -> PriceTable:
        if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
            raise PriceError(f'{source}: expected an object with a "models" object')
        return cls((_entry(str(k), v) for k, v in data["models"].items()), source)

    def merged(self, other: PriceTable) -> PriceTable:
        return PriceTable([*self.models.values(), *other.models.values()], other.source)

    def lookup(self, model: str | None) -> ModelPrice | None:
        if not model:
            return None
        for entry in self._ordered:
            if model.startswith(entry.model) and _SUFFIX.fullmatch(model[len(entry.model) :]):
                return entry
        return None

    def cost(self, model: str | None, t: TokenCounts) -> float | None:
        """USD for these tokens on this model; None when the model is not in the table."""
        if not (t.input or t.output or t.cache_read or t.cache_creation):
            return 0.0  # nothing billed: exact whatever the model
        entry = self.lookup(model)
        if entry is None:
            return None
        r = entry.rates_for(t.total_input)
        one_hour = min(t.cache_creation_1h, t.cache_creation)
        five_min = t.cache_creation - one_hour
        return (
            t.input * r.input
            + t.output * r.output
            + t.cache_read * r.cache_read
            + five_min * r.cache_write_5m
            + one_hour * r.cache_write_1h
        ) / PER_TOKENS

    def context_window(self, model: str | None, context_1m: bool) -> int:
        """1M with the context-1m beta (where the model takes it) or 1M-native, else 200k."""
        entry = self.lookup(model)
        if entry is None:
            return WINDOW_1M if context_1m else DEFAULT_WINDOW
        if context_1m and entry.context_window_1m_beta:
            return max(entry.context_window, entry.context_window_1m_beta)
        return entry.context_window


def _read(path: Path) -> Any:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PriceError(f"cannot read price file {path}: {exc.strerror or exc}") from None
    try:
        if path.suffix.lower() == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                raise PriceError(f"{path}: TOML needs Python >= 3.11; use JSON") from None
            return tomllib.loads(raw.decode("utf-8"))
        return json.loads(raw)
    except PriceError:
        raise
    except ValueError as exc:
        raise PriceError(f"{path}: not valid {path.suffix.lstrip('.') or 'JSON'}: {exc}") from None


@lru_cache(maxsize=1)
def packaged_prices() -> PriceTable:
    text = resources.files("clauditor").joinpath("data/prices.json").read_text("utf-8")
    return PriceTable.from_dict(json.loads(text), "packaged")


def load_prices(path: Path | str | None = None) -> PriceTable:
    """The packaged table, with a user's file merged over it (or replacing it)."""
    base = packaged_prices()
    if path is None:
        return base
    path = Path(path).expanduser()
    data = _read(path)
    user = PriceTable.from_dict(data, str(path))
    if isinstance(data, dict) and data.get("replace") is True:
        return user
    return base.merged(user)
