"""The model catalog: prices (USD per million tokens), context windows and price dates, as data.

The packaged catalog is clauditor/data/models.json; `--prices FILE` (JSON, or TOML on
Python >= 3.11) merges a user's entries over it, or replaces it with `"replace": true`.

Matching: a model id matches an entry when it equals the entry's id or continues it with
only a date (`-20251101`), `-latest`, a `[1m]` tag or an `@version`; the longest such entry
wins. `claude-opus-4-9` does not match `claude-opus-4`: an unknown model is unpriced (cost
None) and has no context window (None), never a guess.

Cost = input x input + output x output + cache_read x cache_read
       + 5m writes x cache_write_5m + 1h writes x cache_write_1h   (per million tokens),
with the 5m/1h split from usage.cache_creation, at the rates in force when the request was
made: an entry's `changes` ([{"from": "YYYY-MM-DD", <some rates>}], UTC days) override its
rates from that day on. An entry's optional `long_context` band ({"above_input_tokens": N,
<the five rates>}) prices every token of a request whose prompt (input + cache_read +
cache_creation) exceeds N at its rates instead (Haiku 5.5 above 100k). Usage that says
`inference_geo: "us"` is multiplied by the catalog's `inference_geo` factor (1.1).
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timezone
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from clauditor.errors import ClauditorError
from clauditor.sessions.models import TokenCounts

PER_TOKENS = 1_000_000
WINDOW_1M = 1_000_000
DEFAULT_WINDOW = 200_000  # for a user's entry that gives none
RATE_NAMES = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")
COST_CLASSES = RATE_NAMES  # cost_by_class keys: each token class at its own rate
CATALOG_FILE = "data/models.json"

# What may follow a table id in a model id: a date, -latest, a [1m] tag, a Vertex @version.
_SUFFIX = re.compile(r"(?:-\d{8})?(?:-latest)?(?:\[[0-9a-z]+\])?(?:@[\w.:-]+)?")
_TRAILING = re.compile(r"(?:\[[0-9a-z]+\])?(?:@[\w.:-]+)?$")
_DATED = re.compile(r"(?:-\d{8}|-latest)$")
_TAG_1M = re.compile(r"\[1m\]", re.IGNORECASE)


class PriceError(ClauditorError, ValueError):
    """A price file that cannot be used; the message is one line for the user."""


def normalize_model(model: str) -> str:
    """The model family: without a date, -latest, [1m] tag or @version suffix."""
    base = _TRAILING.sub("", model.strip())
    return _DATED.sub("", base)


def tagged_1m(model: str | None) -> bool:
    """Claude Code's `[1m]` model tag (e.g. claude-opus-4-8[1m]): the 1M window asked for."""
    return bool(model) and _TAG_1M.search(model or "") is not None


@dataclass(frozen=True, slots=True)
class Rates:
    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float

    def write(self, ttl_seconds: int) -> float:
        return self.cache_write_1h if ttl_seconds >= 3600 else self.cache_write_5m

    def as_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in RATE_NAMES}


@dataclass(frozen=True, slots=True)
class LongContext:
    above_input_tokens: int
    rates: Rates


@dataclass(frozen=True, slots=True)
class PricePeriod:
    """The rates of a model from one UTC day on (None: from the beginning)."""

    since: date | None
    rates: Rates
    long_context: LongContext | None = None

    def rates_for(self, total_input: int) -> Rates:
        lc = self.long_context
        if lc is not None and total_input > lc.above_input_tokens:
            return lc.rates
        return self.rates


@dataclass(frozen=True, slots=True)
class ModelPrice:
    model: str  # the catalog id
    periods: tuple[PricePeriod, ...]  # oldest first; the first has since=None
    context_window: int
    context_window_1m_beta: int | None = None  # with the context-1m-... beta
    name: str | None = None

    @property
    def rates(self) -> Rates:
        """The newest rates (what `clauditor models` shows as current)."""
        return self.periods[-1].rates

    @property
    def long_context(self) -> LongContext | None:
        return self.periods[-1].long_context

    def period_at(self, ts: float | None) -> PricePeriod:
        if ts is None or len(self.periods) == 1:
            return self.periods[-1]
        day = datetime.fromtimestamp(ts, timezone.utc).date()
        chosen = self.periods[0]
        for period in self.periods[1:]:
            if period.since is not None and period.since <= day:
                chosen = period
        return chosen

    def rates_for(self, total_input: int, ts: float | None = None) -> Rates:
        return self.period_at(ts).rates_for(total_input)


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


def _rates(where: str, obj: Mapping[str, Any], base: Rates | None = None) -> Rates:
    """All five rates, or (with a base) the ones given over the base's."""
    if base is None:
        missing = [k for k in RATE_NAMES if k not in obj]
        if missing:
            raise PriceError(f"{where}: missing {', '.join(missing)}")
        return Rates(*(_number(f"{where}.{k}", obj[k]) for k in RATE_NAMES))
    given = {k: _number(f"{where}.{k}", obj[k]) for k in RATE_NAMES if k in obj}
    return replace(base, **given)


def _long_context(where: str, lc: Any, base: LongContext | None) -> LongContext | None:
    if lc is None:
        return base
    if not isinstance(lc, dict):
        raise PriceError(f"{where}: expected an object")
    above = lc.get("above_input_tokens", base.above_input_tokens if base else None)
    return LongContext(
        _tokens(f"{where}.above_input_tokens", above),
        _rates(where, lc, base.rates if base else None),
    )


def _day(where: str, value: Any) -> date:
    if not isinstance(value, str):
        raise PriceError(f"{where}: expected a date (YYYY-MM-DD), got {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise PriceError(f"{where}: expected a date (YYYY-MM-DD), got {value!r}") from None


def _periods(where: str, obj: Mapping[str, Any]) -> tuple[PricePeriod, ...]:
    first = PricePeriod(
        None,
        _rates(where, obj),
        _long_context(f"{where}.long_context", obj.get("long_context"), None),
    )
    changes = obj.get("changes", [])
    if not isinstance(changes, list):
        raise PriceError(f"{where}.changes: expected a list")
    dated: list[tuple[date, Mapping[str, Any], str]] = []
    for i, change in enumerate(changes):
        at = f"{where}.changes[{i}]"
        if not isinstance(change, dict):
            raise PriceError(f"{at}: expected an object")
        dated.append((_day(f"{at}.from", change.get("from")), change, at))
    periods = [first]
    for since, change, at in sorted(dated, key=lambda d: d[0]):
        prev = periods[-1]
        periods.append(
            PricePeriod(
                since,
                _rates(at, change, prev.rates),
                _long_context(f"{at}.long_context", change.get("long_context"), prev.long_context),
            )
        )
    return tuple(periods)


def _entry(model: str, obj: Any) -> ModelPrice:
    where = f"models.{model}"
    if not isinstance(obj, dict):
        raise PriceError(f"{where}: expected an object")
    # A new model in a user's file may leave the window out: 200k, as documented.
    window = _tokens(f"{where}.context_window", obj.get("context_window", DEFAULT_WINDOW))
    beta = obj.get("context_window_1m_beta")
    name = obj.get("name")
    return ModelPrice(
        model=model,
        periods=_periods(where, obj),
        context_window=window,
        context_window_1m_beta=None if beta is None else _tokens(f"{where}.beta", beta),
        name=name if isinstance(name, str) else None,
    )


def _geo(source: str, obj: Any) -> dict[str, float]:
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise PriceError(f"{source}: inference_geo: expected an object")
    return {str(k): _number(f"inference_geo.{k}", v) for k, v in obj.items()}


class PriceTable:
    """The catalog: lookup by model id, cost at a time, context window."""

    def __init__(
        self,
        models: Iterable[ModelPrice],
        source: str = "packaged",
        geo_multipliers: Mapping[str, float] | None = None,
    ) -> None:
        self.models: dict[str, ModelPrice] = {m.model: m for m in models}
        self.source = source
        self.geo_multipliers: dict[str, float] = dict(geo_multipliers or {})
        # Longest id first, so claude-opus-4-5 is tried before claude-opus-4.
        self._ordered = sorted(self.models.values(), key=lambda m: len(m.model), reverse=True)

    @classmethod
    def from_dict(cls, data: Any, source: str) -> PriceTable:
        if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
            raise PriceError(f'{source}: expected an object with a "models" object')
        return cls(
            (_entry(str(k), v) for k, v in data["models"].items()),
            source,
            _geo(source, data.get("inference_geo")),
        )

    def lookup(self, model: str | None) -> ModelPrice | None:
        if not model:
            return None
        for entry in self._ordered:
            if model.startswith(entry.model) and _SUFFIX.fullmatch(model[len(entry.model) :]):
                return entry
        return None

    @property
    def max_window(self) -> int:
        """The largest window any entry has (with the 1M beta): what no prompt exceeds."""
        return max(
            (max(m.context_window, m.context_window_1m_beta or 0) for m in self.models.values()),
            default=WINDOW_1M,
        )

    def known(self, model: str | None) -> bool:
        return self.lookup(model) is not None

    def describe(self, at: float) -> list[dict[str, Any]]:
        """Every entry with the rates in force at `at` (what `clauditor models` lists)."""
        out = []
        for m in sorted(self.models.values(), key=lambda m: m.model):
            period = m.period_at(at)
            i = m.periods.index(period)
            before = m.periods[i - 1].rates.as_dict() if i else None
            lc = period.long_context
            out.append(
                {
                    "model": m.model,
                    "name": m.name,
                    **period.rates.as_dict(),
                    "since": period.since.isoformat() if period.since else None,
                    "rates_before": before,
                    "context_window": m.context_window,
                    "context_window_1m_beta": m.context_window_1m_beta,
                    "long_context": None
                    if lc is None
                    else {"above_input_tokens": lc.above_input_tokens, **lc.rates.as_dict()},
                    "changes": [
                        {"from": p.since.isoformat(), **p.rates.as_dict()}
                        for p in m.periods
                        if p.since is not None
                    ],
                }
            )
        return out

    def cost_by_class(
        self,
        model: str | None,
        t: TokenCounts,
        at: float | None = None,
        inference_geo: str | None = None,
    ) -> dict[str, float] | None:
        """USD per token class (COST_CLASSES) for these tokens on this model at time `at`
        (None: today's rates); None when the model is not in the catalog."""
        entry = self.lookup(model)
        if entry is None:
            return None  # even for no tokens: an unknown model's totals stay unknown
        r = entry.rates_for(t.total_input, at)
        one_hour = min(t.cache_creation_1h, t.cache_creation)
        geo = self.geo_multipliers.get(inference_geo or "", 1.0) / PER_TOKENS
        return {
            "input": t.input * r.input * geo,
            "output": t.output * r.output * geo,
            "cache_write_5m": (t.cache_creation - one_hour) * r.cache_write_5m * geo,
            "cache_write_1h": one_hour * r.cache_write_1h * geo,
            "cache_read": t.cache_read * r.cache_read * geo,
        }

    def cost(
        self,
        model: str | None,
        t: TokenCounts,
        at: float | None = None,
        inference_geo: str | None = None,
    ) -> float | None:
        """USD for these tokens on this model at time `at`; None when it is unknown."""
        by_class = self.cost_by_class(model, t, at, inference_geo)
        return None if by_class is None else sum(by_class.values())

    def context_window(self, model: str | None, context_1m: bool) -> int | None:
        """The model's native window, or its 1M window with the context-1m beta or a [1m]
        tag. An unknown model has no window, unless 1M was asked for explicitly."""
        context_1m = context_1m or tagged_1m(model)
        entry = self.lookup(model)
        if entry is None:
            return WINDOW_1M if context_1m else None
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
            if sys.version_info < (3, 11):
                raise PriceError(f"{path}: TOML needs Python >= 3.11; use JSON")
            import tomllib

            return tomllib.loads(raw.decode("utf-8"))
        return json.loads(raw)
    except PriceError:
        raise
    except ValueError as exc:
        raise PriceError(f"{path}: not valid {path.suffix.lstrip('.') or 'JSON'}: {exc}") from None


@lru_cache(maxsize=1)
def _packaged_data() -> dict[str, Any]:
    text = resources.files("clauditor").joinpath(CATALOG_FILE).read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@lru_cache(maxsize=1)
def packaged_prices() -> PriceTable:
    return PriceTable.from_dict(_packaged_data(), "packaged")


def _overlay(base: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    """The user's entries over the packaged ones, key by key within an entry: an entry that
    only moves a price (or adds `changes`) keeps the catalog's window and other rates."""
    models = {k: dict(v) for k, v in base["models"].items()}
    for model, entry in user["models"].items():
        if isinstance(entry, dict) and isinstance(models.get(model), dict):
            models[model] = {**models[model], **entry}
        else:
            models[model] = entry
    geo = {**base.get("inference_geo", {}), **(user.get("inference_geo") or {})}
    return {"models": models, "inference_geo": geo}


def load_prices(path: Path | str | None = None) -> PriceTable:
    """The packaged catalog, with a user's file merged over it (or replacing it)."""
    base = packaged_prices()
    if path is None:
        return base
    path = Path(path).expanduser()
    data = _read(path)
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise PriceError(f'{path}: expected an object with a "models" object')
    if data.get("replace") is True:
        return PriceTable.from_dict(data, str(path))
    return PriceTable.from_dict(_overlay(_packaged_data(), data), str(path))
