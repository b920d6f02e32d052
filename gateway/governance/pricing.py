"""Prices and cost: pure functions over the bundled price table and the operator's overrides.

Money is held as integer nano-dollars (1e-9 USD) so that sums are exact: a price of P USD per
million tokens is P * 1000 nano-dollars per token, an integer for any price given to three
decimals (every list price is). The table ships in the package (``gateway/data/prices.json``) and
is never fetched from the network.

Cost control fails closed: a deployment whose price is neither set by the operator nor in the
table takes ``governance.default_prices``, and without that it refuses start-up
(``deployment_prices``). Counted as free, it would escape every budget.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from typing import Any

from gateway.config import Deployment
from gateway.config.governance import DeploymentGovernance, Prices
from gateway.config.governance import Governance as GovernanceSettings
from gateway.errors import ConfigError
from gateway.values import Usage

NANOS_PER_USD = 10**9
PRICE_TABLE = "prices.json"


@dataclass(frozen=True, slots=True)
class Price:
    """Nano-dollars per token."""

    input: Decimal
    cached_input: Decimal
    output: Decimal
    exact: tuple[int, int, int, int] | None = None  # the same as integers, when they are whole
    cache_write: Decimal | None = None  # None: a cache write costs the input price

    @classmethod
    def per_million(
        cls,
        input: Decimal,
        output: Decimal = Decimal(0),
        cached_input: Decimal | None = None,
        cache_write: Decimal | None = None,
    ) -> Price:
        scale = Decimal(NANOS_PER_USD) / Decimal(10**6)
        cached = input if cached_input is None else cached_input
        written = None if cache_write is None else cache_write * scale
        return cls.of(input * scale, cached * scale, output * scale, written)

    @classmethod
    def of(
        cls,
        input: Decimal,
        cached_input: Decimal,
        output: Decimal,
        cache_write: Decimal | None = None,
    ) -> Price:
        written = input if cache_write is None else cache_write
        values = (input, cached_input, output, written)
        whole = all(v == v.to_integral_value() for v in values)
        exact = (int(input), int(cached_input), int(output), int(written)) if whole else None
        return cls(input, cached_input, output, exact, cache_write)

    def cost(self, usage: Usage) -> int:
        """The cost of ``usage`` in nano-dollars: cached prompt tokens at the cached price,
        prompt tokens written to the provider's cache at the cache-write price."""
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        written = min(usage.cache_write_tokens, usage.prompt_tokens - cached)
        plain = usage.prompt_tokens - cached - written
        if self.exact is not None:  # every list price: whole nano-dollars per token
            i, c, o, w = self.exact
            return plain * i + cached * c + written * w + usage.completion_tokens * o
        write = self.input if self.cache_write is None else self.cache_write
        total = (
            plain * self.input
            + cached * self.cached_input
            + written * write
            + usage.completion_tokens * self.output
        )
        return int(total.to_integral_value(ROUND_HALF_UP))


FREE = Price.of(Decimal(0), Decimal(0), Decimal(0))


# The keys a price row may carry: the prices (USD per million tokens, as decimal strings), and
# what the row is (its provider, the page it was taken from and the date it was current there).
# ``cache_write`` is the price of a prompt token written to the provider's cache, where the
# provider charges for that (Anthropic, Bedrock); without it a write costs the input price.
PRICE_KEYS = frozenset({"input", "output", "cached_input", "cache_write"})
ROW_KEYS = PRICE_KEYS | {"provider", "source", "date"}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _decimal(value: Any, where: str) -> Decimal:
    if not isinstance(value, str):
        raise ValueError(f'{where}: expected a decimal string such as "2.50"')
    try:
        amount = Decimal(value)
    except ArithmeticError:
        raise ValueError(f"{where}: {value!r} is not a decimal number") from None
    if not amount.is_finite() or amount < 0 or amount > 100000:
        raise ValueError(f"{where}: expected a price from 0 to 100000 USD per million tokens")
    return amount


def _price(entry: Any, where: str = "price") -> Price:
    if not isinstance(entry, dict) or "input" not in entry:
        raise ValueError(f"{where}: expected an object with at least input")
    unknown = sorted(set(entry) - ROW_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r}")
    for key in ("provider", "source"):
        if key in entry and not (isinstance(entry[key], str) and entry[key]):
            raise ValueError(f"{where}.{key}: expected a non-empty string")
    if "date" in entry and not (isinstance(entry["date"], str) and _DATE.match(entry["date"])):
        raise ValueError(f"{where}.date: expected a date as YYYY-MM-DD")
    prices = {k: _decimal(entry[k], f"{where}.{k}") for k in PRICE_KEYS if k in entry}
    return Price.per_million(
        prices["input"],
        prices.get("output", Decimal(0)),
        prices.get("cached_input"),
        prices.get("cache_write"),
    )


@dataclass(frozen=True)
class PriceTable:
    taken: str
    models: dict[str, Price]
    providers: dict[str, Price]

    @classmethod
    def bundled(cls) -> PriceTable:
        text = resources.files("gateway.data").joinpath(PRICE_TABLE).read_text("utf-8")
        return cls.parse(json.loads(text))

    @classmethod
    def parse(cls, data: Any) -> PriceTable:
        """A price table from its JSON; ValueError naming the first row or key that is wrong."""
        if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
            raise ValueError("expected an object with models: {<model>: {input: ...}}")
        taken = data.get("taken")
        if not (isinstance(taken, str) and _DATE.match(taken)):
            raise ValueError("taken: expected the date the prices were taken, as YYYY-MM-DD")
        providers = data.get("providers", {})
        if not isinstance(providers, dict):
            raise ValueError("providers: expected an object of provider prices")
        return cls(
            taken=taken,
            models={k: _price(v, f"models.{k}") for k, v in data["models"].items()},
            providers={k: _price(v, f"providers.{k}") for k, v in providers.items()},
        )

    def overlaid(self, other: PriceTable) -> PriceTable:
        """This table with ``other``'s rows in place of its own (the operator's price file)."""
        return PriceTable(
            taken=other.taken,
            models={**self.models, **other.models},
            providers={**self.providers, **other.providers},
        )

    def for_deployment(
        self, deployment: Deployment, override: DeploymentGovernance | None
    ) -> Price | None:
        """The operator's override, else the table's price of the upstream model, else the
        provider's (the mock is free); None when the gateway does not know the price."""
        if override is not None and override.prices is not None:
            return _of(override.prices)
        name = deployment.upstream_model or deployment.model
        if name in self.models:
            return self.models[name]
        return self.providers.get(deployment.provider)


def _of(prices: Prices) -> Price:
    return Price.per_million(prices.input, prices.output, prices.cached_input, prices.cache_write)


def deployment_prices(
    deployments: list[Deployment],
    settings: GovernanceSettings,
    table: PriceTable,
    source: str = "config",
) -> dict[str, Price]:
    """Every deployment's price by its name: the operator's, else the table's, else the
    operator's default. ConfigError naming each deployment that has none of these."""
    default = _of(settings.default_prices) if settings.default_prices is not None else None
    prices: dict[str, Price] = {}
    unknown: list[Deployment] = []
    for deployment in deployments:
        price = table.for_deployment(deployment, settings.deployments.get(deployment.name))
        if price is None:
            price = default
        if price is None:
            unknown.append(deployment)
        else:
            prices[deployment.name] = price
    if unknown:
        named = ", ".join(f"{d.name} (model {d.upstream_model or d.model})" for d in unknown)
        raise ConfigError(
            source,
            f"governance.deployments.{unknown[0].name}.prices",
            f"no price is known for {named}: set governance.deployments.<id>.prices for each "
            '("0" for a free one), or governance.default_prices; without a price its spend '
            "would count as 0 and no budget would stop it",
        )
    return prices


def usd(nanos: int) -> str:
    """Nano-dollars as a decimal USD string with nine places, e.g. ``0.000001650``."""
    return f"{Decimal(nanos) / NANOS_PER_USD:.9f}"


def nanos(amount: Decimal) -> int:
    return int((amount * NANOS_PER_USD).to_integral_value(ROUND_HALF_UP))
