"""The model catalog (`/api/models`): the rates in force now, per million tokens (USD)."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from clauditor.api.schemas.base import PerTokenClass, Schema


class RatesOut(PerTokenClass):
    """USD per million tokens of each class."""


class LongContextOut(RatesOut):
    """The rates every token of a prompt above `above_input_tokens` is billed at."""

    above_input_tokens: int


class RateChangeOut(RatesOut):
    model_config = ConfigDict(populate_by_name=True)
    since: str = Field(alias="from")  # the UTC day these rates start


class CatalogModelOut(RatesOut):
    model: str
    name: str | None
    since: str | None  # the day the rates in force began; null: always
    rates_before: RatesOut | None
    context_window: int | None
    context_window_1m_beta: int | None
    long_context: LongContextOut | None
    changes: list[RateChangeOut]


class SeenModelOut(Schema):
    model: str
    requests: int
    last_seen: str | None


class ModelsOut(Schema):
    generated_at: str
    source: str  # packaged, or the price file merged over it
    catalog: list[CatalogModelOut]
    unknown_seen: list[SeenModelOut]  # models requests used that the catalog lacks
