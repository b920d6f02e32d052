"""Pure logic: prices and cost, calendar periods, token estimates, attribution."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from gateway.config import Deployment
from gateway.config.governance import DeploymentGovernance, Prices
from gateway.governance import estimate, periods
from gateway.governance.core import attribution
from gateway.governance.pricing import Price, PriceTable, nanos, usd
from gateway.providers.registry import PROVIDERS
from gateway.values import Usage
from gateway.wire.anthropic.vocabulary import usage_of


def deployment(**fields: str) -> Deployment:
    return Deployment.model_validate(fields, context={"providers": PROVIDERS})


def test_the_bundled_price_table_has_real_models_a_date_and_a_free_mock() -> None:
    table = PriceTable.bundled()
    assert table.taken == "2025-11-24"
    for model in ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "o3-mini", "text-embedding-3-small"):
        assert model in table.models
    mock = deployment(model="m", provider="mock")
    assert table.for_deployment(mock, None) == Price.per_million(Decimal(0))


def test_cost_is_exact_in_nano_dollars_with_cached_input_at_its_own_price() -> None:
    price = PriceTable.bundled().models["gpt-4o-mini"]  # 0.15 in, 0.075 cached, 0.60 out
    usage = Usage(prompt_tokens=1000, completion_tokens=100, cached_tokens=400)
    assert price.cost(usage) == 600 * 150 + 400 * 75 + 100 * 600


def test_an_operator_override_wins_over_the_table() -> None:
    openai = deployment(
        model="gpt-4o", provider="openai", base_url="https://api.openai.com/v1", credential="env:X"
    )
    override = DeploymentGovernance(prices=Prices(input=Decimal("1"), output=Decimal("2")))
    price = PriceTable.bundled().for_deployment(openai, override)
    assert price is not None
    assert price.cost(Usage(prompt_tokens=10, completion_tokens=10)) == 10 * 1000 + 10 * 2000


def test_a_model_missing_from_the_table_has_no_price() -> None:
    local = deployment(model="x", provider="openai_compatible", base_url="http://vllm.internal/v1")
    assert PriceTable.bundled().for_deployment(local, None) is None


def test_usd_strings_round_trip_nanos() -> None:
    assert usd(0) == "0.000000000"
    assert usd(nanos(Decimal("12.5"))) == "12.500000000"


def test_periods_are_calendar_aligned_in_utc() -> None:
    moment = datetime(2026, 3, 5, 13, 30, tzinfo=UTC)  # a Thursday
    assert periods.window("daily", moment) == (
        datetime(2026, 3, 5, tzinfo=UTC),
        datetime(2026, 3, 6, tzinfo=UTC),
    )
    assert periods.window("weekly", moment)[0] == datetime(2026, 3, 2, tzinfo=UTC)  # Monday
    assert periods.window("monthly", datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert periods.label("daily", datetime(2026, 3, 5, tzinfo=UTC)) == "d20260305"


def test_estimate_counts_text_generously_and_reserves_max_tokens_times_n() -> None:
    body = {"messages": [{"role": "user", "content": "a" * 30}], "max_tokens": 50, "n": 2}
    guess = estimate.chat(body, default_max_tokens=4096)
    assert guess.prompt_tokens == 4 + 8 + 3  # framing, four letters a token, the reply's priming
    assert guess.completion_tokens == 100


def test_estimate_uses_the_default_when_no_max_tokens_is_named() -> None:
    guess = estimate.chat({"messages": []}, default_max_tokens=777)
    assert guess.completion_tokens == 777


def test_an_image_counts_a_flat_amount_not_its_base64_size() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 100000}}
    guess = estimate.chat({"messages": [{"role": "user", "content": [image]}]}, 1)
    assert guess.prompt_tokens == 4 + estimate.IMAGE_TOKENS + 3


def test_embeddings_estimate_counts_every_input() -> None:
    assert estimate.embeddings({"input": ["abc", "abcdef"]}).prompt_tokens == 3
    assert estimate.embeddings({"input": [[1, 2, 3]]}).prompt_tokens == 3


def test_attribution_takes_the_key_project_first_and_adds_header_tags() -> None:
    headers = {b"x-sealgate-project": b"other", b"x-sealgate-tags": b"b, a"}
    assert attribution({"project": "p1", "tags": ["c"]}, headers, True) == ("p1", ("a", "b", "c"))
    assert attribution({}, headers, True) == ("other", ("a", "b"))
    assert attribution({}, headers, False) == (None, ())


def test_prompt_tokens_written_to_the_providers_cache_cost_its_cache_write_price() -> None:
    # claude-sonnet-4-5: input 3.00, cache reads 0.30, cache writes 3.75, output 15.00 USD/M
    price = PriceTable.bundled().models["claude-sonnet-4-5"]
    usage = Usage(
        prompt_tokens=1000, completion_tokens=100, cached_tokens=200, cache_write_tokens=300
    )
    # 500 plain x 3000 + 200 read x 300 + 300 written x 3750 + 100 x 15000 nano-dollars
    assert price.cost(usage) == 500 * 3000 + 200 * 300 + 300 * 3750 + 100 * 15000
    assert Price.per_million(Decimal(3)).cost(usage) == 1000 * 3000  # no write price: input's


def test_anthropic_usage_counts_cache_writes_apart_so_they_are_priced_as_writes() -> None:
    usage = usage_of(
        {
            "input_tokens": 10,
            "cache_read_input_tokens": 20,
            "cache_creation_input_tokens": 30,
            "output_tokens": 5,
        }
    )
    assert usage == Usage(
        prompt_tokens=60, completion_tokens=5, cached_tokens=20, cache_write_tokens=30
    )
