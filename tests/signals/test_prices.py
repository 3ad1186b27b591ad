"""The price table: every model priced to the cent, prefix rules, windows, user files."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from clauditor.sessions.models import TokenCounts
from clauditor.sessions.signals.prices import (
    PriceError,
    load_prices,
    normalize_model,
    packaged_prices,
)

# Anthropic's list prices (docs/anthropic-api.md), typed in by hand: input, output,
# 5m write, 1h write, cache read ($/MTok), window without / with the context-1m beta.
DOC_TABLE = {
    "claude-opus-5-5": (4, 20, 5, 8, 0.20, 1_000_000, 1_000_000),
    "claude-sonnet-5-5": (2, 10, 2.50, 4, 0.10, 1_000_000, 1_000_000),  # from 2026-10-07
    "claude-haiku-5-5": (0.10, 0.50, 0.125, 0.20, 0.01, 1_000_000, 1_000_000),  # <= 100k
    "claude-fable-5-1": (10, 50, 12.50, 20, 0.25, 1_000_000, 1_000_000),
    "claude-mythos-5-1": (10, 50, 12.50, 20, 0.25, 1_000_000, 1_000_000),
    "claude-fable-5": (10, 50, 12.50, 20, 1.00, 1_000_000, 1_000_000),
    "claude-opus-5": (5, 25, 6.25, 10, 0.50, 1_000_000, 1_000_000),
    "claude-opus-4-8": (5, 25, 6.25, 10, 0.50, 200_000, 1_000_000),
    "claude-opus-4-7": (5, 25, 6.25, 10, 0.50, 200_000, 1_000_000),
    "claude-opus-4-6": (5, 25, 6.25, 10, 0.50, 200_000, 1_000_000),
    "claude-opus-4-5-20251101": (5, 25, 6.25, 10, 0.50, 200_000, 200_000),
    "claude-opus-4-1": (15, 75, 18.75, 30, 1.50, 200_000, 200_000),
    "claude-opus-4": (15, 75, 18.75, 30, 1.50, 200_000, 200_000),
    "claude-sonnet-5": (2, 10, 2.50, 4, 0.20, 1_000_000, 1_000_000),
    "claude-sonnet-4-6": (3, 15, 3.75, 6, 0.30, 1_000_000, 1_000_000),
    "claude-sonnet-4-5-20250929": (3, 15, 3.75, 6, 0.30, 200_000, 1_000_000),
    "claude-sonnet-4": (3, 15, 3.75, 6, 0.30, 200_000, 1_000_000),
    "claude-haiku-4-5-20251001": (1, 5, 1.25, 2, 0.10, 200_000, 200_000),
}
# Enough tokens of every kind that each price moves the total by more than a cent.
TOKENS = TokenCounts(
    input=123_456, output=78_901, cache_read=2_345_678, cache_creation=70_000,
    cache_creation_1h=30_000,
)  # fmt: skip
SMALL = TokenCounts(input=20_000, output=50_000, cache_read=60_000, cache_creation=10_000,
                    cache_creation_1h=4_000)  # fmt: skip
# Models whose price depends on the prompt's size: the doc's table holds the lower band.
BANDED = {"claude-haiku-5-5"}


def day(text: str) -> float:
    return datetime.fromisoformat(f"{text}T12:00:00+00:00").timestamp()


@pytest.mark.parametrize("model", sorted(DOC_TABLE))
def test_every_model_costs_tokens_times_prices_to_the_cent(model: str) -> None:
    inp, out, w5, w1h, read, _, _ = DOC_TABLE[model]
    tokens = SMALL if model in BANDED else TOKENS
    expected = (
        tokens.input * inp + tokens.output * out + tokens.cache_read * read
        + (tokens.cache_creation - tokens.cache_creation_1h) * w5 + tokens.cache_creation_1h * w1h
    ) / 1_000_000  # fmt: skip
    cost = packaged_prices().cost(model, tokens, at=day("2026-12-01"))
    assert cost is not None
    assert round(cost, 4) == round(expected, 4)
    assert cost == pytest.approx(expected, abs=1e-9)


def test_opus_5_5_reproduces_claude_code_own_cost() -> None:
    # Claude Code 2.1.332's stream-json for one Bash round trip (fixture n_tool):
    # modelUsage = 87 in, 37 out, 12,259 cache read, 12,327 5m writes; costUSD 0.0651748.
    t = TokenCounts(input=87, output=37, cache_read=12_259, cache_creation=12_327)
    assert packaged_prices().cost("claude-opus-5-5", t) == pytest.approx(0.0651748, abs=1e-12)


def test_a_request_is_priced_at_the_rate_in_force_on_its_day() -> None:
    # Sonnet 5.5's cache read went from $0.20 to $0.10 on 2026-10-07 (UTC).
    t = TokenCounts(cache_read=1_000_000)
    table = packaged_prices()
    assert table.cost("claude-sonnet-5-5", t, at=day("2026-10-06")) == pytest.approx(0.20)
    assert table.cost("claude-sonnet-5-5", t, at=day("2026-10-07")) == pytest.approx(0.10)
    midnight = datetime(2026, 10, 7, tzinfo=timezone.utc).timestamp()
    assert table.cost("claude-sonnet-5-5", t, at=midnight - 1) == pytest.approx(0.20)
    assert table.cost("claude-sonnet-5-5", t, at=midnight) == pytest.approx(0.10)


def test_haiku_5_5_bills_every_token_at_the_higher_band_above_100k() -> None:
    table = packaged_prices()
    at_limit = TokenCounts(input=40_000, cache_read=50_000, cache_creation=10_000, output=1_000)
    assert table.cost("claude-haiku-5-5", at_limit) == pytest.approx(
        (40_000 * 0.10 + 50_000 * 0.01 + 10_000 * 0.125 + 1_000 * 0.50) / 1e6
    )
    above = TokenCounts(input=40_001, cache_read=50_000, cache_creation=10_000, output=1_000)
    assert table.cost("claude-haiku-5-5", above) == pytest.approx(
        (40_001 * 0.50 + 50_000 * 0.05 + 10_000 * 0.625 + 1_000 * 2.50) / 1e6
    )


def test_data_residency_costs_ten_percent_more() -> None:
    t = TokenCounts(input=1_000_000)
    assert packaged_prices().cost("claude-opus-5-5", t, inference_geo="us") == pytest.approx(4.4)
    assert packaged_prices().cost("claude-opus-5-5", t, inference_geo="") == pytest.approx(4.0)


def test_the_packaged_table_is_the_documented_one() -> None:
    table = packaged_prices()
    assert {normalize_model(m) for m in DOC_TABLE} == set(table.models)
    for model, (*_, window, window_1m) in DOC_TABLE.items():
        assert table.context_window(model, context_1m=False) == window, model
        assert table.context_window(model, context_1m=True) == window_1m, model


@pytest.mark.parametrize(
    ("model", "entry"),
    [
        ("claude-opus-4-8", "claude-opus-4-8"),
        ("claude-opus-4-8-20260301", "claude-opus-4-8"),
        ("claude-opus-4-8[1m]", "claude-opus-4-8"),
        ("claude-opus-4-1@20250805", "claude-opus-4-1"),
        ("claude-opus-4-20250514", "claude-opus-4"),
        ("claude-sonnet-4-5-latest", "claude-sonnet-4-5"),
        ("claude-opus-4-9", None),  # not "claude-opus-4" with a suffix: unpriced
        ("claude-opus-4-8-fast", None),
        ("claude-haiku-3", None),
        ("gpt-4o", None),
        ("", None),
    ],
)
def test_matching_is_by_prefix_with_a_dated_suffix_only(model: str, entry: str | None) -> None:
    found = packaged_prices().lookup(model)
    assert (found.model if found else None) == entry


def test_unknown_models_stay_unknown() -> None:
    table = packaged_prices()
    assert table.cost("claude-opus-4-9", TokenCounts(input=1)) is None
    assert table.cost(None, TokenCounts(output=1)) is None
    assert table.cost("claude-opus-4-9", TokenCounts()) is None
    assert table.cost("claude-opus-5-5", TokenCounts()) == 0.0  # known, nothing billed
    # No guessed window: only an explicit 1M (the beta or a [1m] tag) is a fact.
    assert table.context_window("claude-next", context_1m=False) is None
    assert table.context_window("claude-next", context_1m=True) == 1_000_000
    assert table.context_window("claude-next[1m]", context_1m=False) == 1_000_000
    assert table.context_window("claude-opus-4-8[1m]", context_1m=False) == 1_000_000


def test_normalize_model() -> None:
    assert normalize_model("claude-sonnet-4-5-20250929") == "claude-sonnet-4-5"
    assert normalize_model("claude-opus-4-8[1m]") == "claude-opus-4-8"
    assert normalize_model("claude-opus-4-1@20250805") == "claude-opus-4-1"
    assert normalize_model("claude-opus-4-8") == "claude-opus-4-8"


def test_user_file_merges_adds_and_long_context(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    lc = {
        "above_input_tokens": 200_000,
        "input": 6, "output": 22.5, "cache_write_5m": 7.5, "cache_write_1h": 12,
        "cache_read": 0.6,
    }  # fmt: skip
    sonnet = {
        "input": 3, "output": 15, "cache_write_5m": 3.75, "cache_write_1h": 6, "cache_read": 0.3,
        "context_window": 200_000, "context_window_1m_beta": 1_000_000, "long_context": lc,
    }  # fmt: skip
    mine = {
        "input": 1, "output": 2, "cache_write_5m": 3, "cache_write_1h": 4, "cache_read": 0.5,
    }  # fmt: skip
    path.write_text(json.dumps({"models": {"claude-sonnet-4-5": sonnet, "my-model": mine}}))
    table = load_prices(path)
    assert table.source == str(path)
    assert table.lookup("claude-opus-4-8") is not None  # merged over the packaged table
    assert table.cost("my-model-20260101", TokenCounts(input=1_000_000, output=10)) == 1.00002
    small = TokenCounts(input=1_000, cache_read=199_000, output=1_000)
    assert table.cost("claude-sonnet-4-5", small) == pytest.approx(
        (1_000 * 3 + 199_000 * 0.3 + 1_000 * 15) / 1e6
    )
    big = TokenCounts(input=1_001, cache_read=199_000, cache_creation=100, output=1_000)
    assert table.cost("claude-sonnet-4-5", big) == pytest.approx(
        (1_001 * 6 + 199_000 * 0.6 + 100 * 7.5 + 1_000 * 22.5) / 1e6
    )
    path.write_text(json.dumps({"replace": True, "models": {"my-model": mine}}))
    assert load_prices(path).lookup("claude-opus-4-8") is None


def test_user_file_moves_one_price_and_adds_a_dated_change(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps(
            {
                "models": {
                    # Only the read price moves, from a date on; the rest is the catalog's.
                    "claude-opus-5-5": {"changes": [{"from": "2027-01-01", "cache_read": 0.1}]},
                    "my-model": {"input": 1, "output": 2, "cache_write_5m": 3,
                                 "cache_write_1h": 4, "cache_read": 0.5},
                }
            }
        )
    )  # fmt: skip
    table = load_prices(path)
    read = TokenCounts(cache_read=1_000_000, input=1_000_000)
    assert table.cost("claude-opus-5-5", read, at=day("2026-12-31")) == pytest.approx(4.2)
    assert table.cost("claude-opus-5-5", read, at=day("2027-01-01")) == pytest.approx(4.1)
    assert table.context_window("claude-opus-5-5", context_1m=False) == 1_000_000
    assert table.context_window("my-model", context_1m=False) == 200_000  # documented default
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"models": {"claude-opus-5-5": {"changes": [{"from": "soon"}]}}}))
    with pytest.raises(PriceError, match=r"changes\[0\]\.from: expected a date"):
        load_prices(bad)


def test_toml_price_file(tmp_path: Path) -> None:
    pytest.importorskip("tomllib")
    path = tmp_path / "prices.toml"
    path.write_text(
        '[models."my-model"]\ninput = 1\noutput = 2\ncache_write_5m = 3\n'
        "cache_write_1h = 4\ncache_read = 0.5\ncontext_window = 100000\n"
    )
    assert load_prices(path).context_window("my-model", context_1m=False) == 100_000


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{nope", "not valid"),
        ("[]", 'expected an object with a "models" object'),
        ('{"models": {"m": {"input": 1}}}', "models.m: missing output"),
        (
            '{"models": {"m": {"input": -1, "output": 1, "cache_write_5m": 1,'
            ' "cache_write_1h": 1, "cache_read": 1}}}',
            "models.m.input: expected a non-negative number",
        ),
        (
            '{"models": {"m": {"input": "1", "output": 1, "cache_write_5m": 1,'
            ' "cache_write_1h": 1, "cache_read": 1}}}',
            "models.m.input: expected a number",
        ),
        (
            '{"models": {"m": {"input": 1, "output": 1, "cache_write_5m": 1,'
            ' "cache_write_1h": 1, "cache_read": 1, "context_window": 0}}}',
            "models.m.context_window: expected a positive whole number",
        ),
    ],
)
def test_bad_price_files_are_one_line_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "prices.json"
    path.write_text(content)
    with pytest.raises(PriceError, match=message):
        load_prices(path)
    with pytest.raises(PriceError, match="cannot read price file"):
        load_prices(tmp_path / "missing.json")


def test_cli_rejects_a_bad_price_file_up_front(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from clauditor.cli import main

    bad = tmp_path / "prices.json"
    bad.write_text('{"models": {"m": {"input": 1}}}')
    for command in ("serve", "up"):
        result = CliRunner().invoke(main, [command, "--prices", str(bad)])
        assert result.exit_code == 2
        assert "models.m: missing output" in result.output
