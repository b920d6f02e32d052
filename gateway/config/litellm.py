"""A LiteLLM proxy config read as a Sealgate config (``sealgate config import-litellm``).

Pure: YAML text in; the Sealgate config (a dict, written out by the CLI and checked there with
the same loader ``serve`` uses) and one ``Note`` per LiteLLM setting that was not carried over,
or was carried with a change, each with its line in the LiteLLM file and the reason.

    LiteLLM                                      Sealgate
    model_list[].model_name                      deployments[].model
    litellm_params.model  <provider>/<name>      provider, upstream_model
    litellm_params.api_base                      base_url (the pinned upstream; the provider's
                                                 public endpoint when unset)
    litellm_params.api_key  os.environ/NAME      credential: env:NAME (a literal key: never
                                                 copied; the deployment reads an env variable)
    litellm_params.api_version (azure)           api_version
    litellm_params.timeout | router timeout      timeouts.total
    litellm_params.rpm / tpm (or the entry's)    governance.deployments.<id>.rpm / tpm
    litellm_params.weight                        weight (and the weighted strategy)
    model_info.id                                id
    model_info.input/output_cost_per_token       governance.deployments.<id>.prices (per 1M)
    router_settings.routing_strategy             router.groups.<model>.strategy
    router_settings.num_retries                  router.retries
    router_settings.cooldown_time                router.cooldown_seconds
    router_settings.allowed_fails                router.breaker.failures (allowed_fails + 1)
    router_settings.redis_host / redis_port      governance.counters: redis, governance.redis.url
    (router|litellm)_settings.fallbacks          router.fallbacks
    ... context_window_fallbacks                 router.groups.<model>.fallbacks.context_window
    ... content_policy_fallbacks                 router.groups.<model>.fallbacks.content_policy
    litellm_settings.cache + cache_params        cache (memory, or redis with governance.redis)
    general_settings.database_url                storage.url (only without a password in it)

The formats are LiteLLM's documented proxy config (docs.litellm.ai, "Proxy Config.yaml",
"Router settings", "Fallbacks", "Caching"); no LiteLLM code is read or run.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import yaml

ENV_PREFIX = "os.environ/"
# Provider prefixes served by a Sealgate provider, with their public endpoint.
NATIVE = {
    "openai": ("openai", "https://api.openai.com/v1"),
    "text-completion-openai": ("openai", "https://api.openai.com/v1"),
    "anthropic": ("anthropic", "https://api.anthropic.com"),
    "azure": ("azure", None),
}
# Providers LiteLLM reaches through an OpenAI-compatible endpoint: Sealgate's openai_compatible.
COMPATIBLE = {
    "hosted_vllm": None,
    "openai_like": None,
    "lm_studio": None,
    "llamafile": None,
    "ollama": "http://localhost:11434/v1",
    "ollama_chat": "http://localhost:11434/v1",
    "groq": "https://api.groq.com/openai/v1",
    "mistral": "https://api.mistral.ai/v1",
    "deepseek": "https://api.deepseek.com/v1",
    "together_ai": "https://api.together.xyz/v1",
    "fireworks_ai": "https://api.fireworks.ai/inference/v1",
    "openrouter": "https://openrouter.ai/api/v1",
    "perplexity": "https://api.perplexity.ai",
    "xai": "https://api.x.ai/v1",
    "deepinfra": "https://api.deepinfra.com/v1/openai",
}
STRATEGIES = {
    "simple-shuffle": None,  # Sealgate's default round robin, or weighted when weights are set
    "least-busy": "least_busy",
    "latency-based-routing": "latency",
    "cost-based-routing": "lowest_cost",
    "usage-based-routing": "usage",
    "usage-based-routing-v2": "usage",
}
FALLBACK_CLASSES = {
    "fallbacks": "general",
    "context_window_fallbacks": "context_window",
    "content_policy_fallbacks": "content_policy",
}
# Deployment params read below; every other litellm_params key is reported.
READ_PARAMS = frozenset(
    {"model", "api_base", "api_key", "api_version", "timeout", "rpm", "tpm", "weight"}
)
WHY: dict[str, str] = {
    "stream_timeout": "Sealgate has one deadline per deployment (timeouts.total) for streams too",
    "max_retries": "retries are per router (router.retries), not per deployment",
    "drop_params": "Sealgate never drops a parameter silently: one a provider cannot honour is "
    "refused with a 400 naming it",
    "additional_drop_params": "Sealgate never drops a parameter silently (see drop_params)",
    "organization": "the OpenAI organization header is not sent by Sealgate's openai provider",
    "master_key": "Sealgate's admin API has its own admin token and virtual keys "
    "(docs/governance.md); the value is not copied",
    "model_group_alias": "model aliases are not part of this Sealgate version's config",
    "success_callback": "logging callbacks are replaced by Sealgate's sinks and OTLP tracing "
    "(docs/observability.md); configure them there",
    "failure_callback": "see success_callback",
    "callbacks": "see success_callback",
    "alerting": "Sealgate has no alerting integrations; alert on its Prometheus metrics",
    "enable_pre_call_checks": "Sealgate routes on context-window errors with "
    "fallbacks.context_window instead of pre-call checks",
    "retry_after": "Sealgate waits with full-jitter backoff (router.backoff) and honours the "
    "upstream's Retry-After",
    "set_verbose": "logging.level sets Sealgate's log level",
    "json_logs": "Sealgate's logs are JSON already",
    "environment_variables": "values are not copied into a config; set them in the environment",
}


@dataclass(frozen=True)
class Note:
    line: int | None
    key: str
    reason: str
    carried: bool = False  # True: carried over, with a change the reason says

    def render(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line else source
        verb = "changed" if self.carried else "not carried over"
        return f"{where}: {self.key}: {verb}: {self.reason}"


@dataclass
class Conversion:
    config: dict[str, Any] = field(default_factory=dict)
    notes: list[Note] = field(default_factory=list)


class LiteLLMConfigError(ValueError):
    """The file is not a LiteLLM proxy config this importer can read (no model_list, bad YAML)."""


def _lines(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            _lines(value, (*path, key.value), out)
            out[(*path, key.value)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _lines(item, (*path, index), out)


class _Converter:
    def __init__(self, data: dict[str, Any], lines: dict[tuple[Any, ...], int]) -> None:
        self.data = data
        self.lines = lines
        self.out = Conversion()
        self.deployments: list[dict[str, Any]] = []
        self.governance: dict[str, dict[str, Any]] = {}
        self.router: dict[str, Any] = {}
        self.groups: dict[str, dict[str, Any]] = {}
        self.weighted: set[str] = set()

    def note(self, path: tuple[Any, ...], reason: str, carried: bool = False) -> None:
        key = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in path)
        key = key.replace(".[", "[")
        self.out.notes.append(Note(self.lines.get(path), key, reason, carried))

    # -- model_list ------------------------------------------------------------------------
    def model(self, index: int, entry: Any) -> None:
        at: tuple[Any, ...] = ("model_list", index)
        if not isinstance(entry, dict) or not isinstance(entry.get("model_name"), str):
            self.note(at, "an entry needs model_name and litellm_params")
            return
        name = entry["model_name"]
        params = entry.get("litellm_params")
        if not isinstance(params, dict) or not isinstance(params.get("model"), str):
            self.note((*at, "litellm_params"), "needs litellm_params.model")
            return
        if "*" in name or "*" in params["model"]:
            self.note(at, "wildcard model names are not part of this Sealgate version's config")
            return
        p = (*at, "litellm_params")
        target = self.provider(params, p)
        if target is None:
            return
        provider, upstream, base_url = target
        deployment: dict[str, Any] = {"model": name, "provider": provider}
        if upstream != name:
            deployment["upstream_model"] = upstream
        if base_url is not None:
            deployment["base_url"] = base_url.rstrip("/")
            if _private(base_url):
                deployment["allow_private_network"] = True
                self.note(
                    (*p, "api_base"),
                    "the upstream is on a private or loopback address, so the deployment says "
                    "allow_private_network: true (Sealgate refuses such upstreams otherwise)",
                    carried=True,
                )
        credential = self.credential(params.get("api_key"), (*p, "api_key"), name)
        if credential is not None:
            deployment["credential"] = credential
        elif provider in ("openai", "anthropic", "azure"):
            variable = _variable(name)
            deployment["credential"] = f"env:{variable}"
            self.note(
                (*p, "api_key"),
                f"no api_key reference: the deployment reads env:{variable} (set it)",
                carried=True,
            )
        if provider == "azure":
            if not isinstance(params.get("api_version"), str):
                self.note((*p, "api_version"), "an azure deployment needs api_version")
                return
            deployment["api_version"] = params["api_version"]
        elif "api_version" in params:
            self.note((*p, "api_version"), f"api_version does not apply to provider {provider}")
        timeout = params.get("timeout", self.setting("router_settings", "timeout"))
        if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0:
            deployment["timeouts"] = {"total": float(timeout)}
        if isinstance(params.get("weight"), (int, float)) and params["weight"] > 0:
            deployment["weight"] = params["weight"]
            self.weighted.add(name)
        given = entry.get("model_info")
        info: dict[str, Any] = given if isinstance(given, dict) else {}
        if isinstance(info.get("id"), str):
            deployment["id"] = info["id"]
        ident = self.identify(deployment)
        limits: dict[str, Any] = {}
        for limit in ("rpm", "tpm"):
            value = params.get(limit, entry.get(limit))
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                limits[limit] = value
        prices = self.prices(info, (*at, "model_info"))
        if prices:
            limits["prices"] = prices
        if limits:
            self.governance[ident] = limits
        for key in params:
            if key not in READ_PARAMS:
                self.note((*p, key), WHY.get(key, "no Sealgate equivalent"))
        for key in info:
            if key not in ("id", "input_cost_per_token", "output_cost_per_token"):
                self.note((*at, "model_info", key), "model_info is not carried over")
        for key in entry:
            if key not in ("model_name", "litellm_params", "model_info", "rpm", "tpm"):
                self.note((*at, key), "no Sealgate equivalent")
        self.deployments.append(deployment)

    def provider(
        self, params: dict[str, Any], at: tuple[Any, ...]
    ) -> tuple[str, str, str | None] | None:
        prefix, sep, rest = params["model"].partition("/")
        if not sep:  # LiteLLM infers the provider from well-known names
            rest = prefix
            prefix = "anthropic" if prefix.startswith("claude") else "openai"
            if not re.match(r"^(gpt-|o\d|chatgpt|text-embedding|claude)", rest):
                self.note((*at, "model"), "give the provider as a prefix (openai/<name>, ...)")
                return None
        api_base = params.get("api_base")
        if api_base is not None and not isinstance(api_base, str):
            self.note((*at, "api_base"), "must be a URL")
            return None
        if isinstance(api_base, str) and api_base.startswith(ENV_PREFIX):
            self.note(
                (*at, "api_base"),
                "Sealgate pins each upstream in the config itself (its egress guard checks "
                "it); write the URL in place of the environment reference",
            )
            return None
        if prefix in NATIVE:
            provider, default = NATIVE[prefix]
            own = urlsplit(api_base).hostname == "api.openai.com" if api_base else True
            if provider == "openai" and not own:
                provider = "openai_compatible"
            base = api_base or default
            if base is None:
                self.note((*at, "api_base"), f"a {prefix} deployment needs api_base")
                return None
            return provider, rest, base
        if prefix in COMPATIBLE:
            base = api_base or COMPATIBLE[prefix]
            if base is None:
                self.note((*at, "api_base"), f"a {prefix} deployment needs api_base")
                return None
            trimmed = base.rstrip("/")
            if prefix.startswith("ollama") and not trimmed.endswith("/v1"):
                base = trimmed + "/v1"  # Ollama's OpenAI-compatible API
            self.note(
                (*at, "model"),
                f"{prefix} is served through its OpenAI-compatible API (openai_compatible)",
                carried=True,
            )
            return "openai_compatible", rest, base
        self.note((*at, "model"), f"Sealgate has no {prefix} provider")
        return None

    def credential(self, value: Any, at: tuple[Any, ...], name: str) -> str | None:
        if value is None:
            return None
        if isinstance(value, str) and value.startswith(ENV_PREFIX):
            variable = value[len(ENV_PREFIX) :]
            if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", variable):
                return f"env:{variable}"
        variable = _variable(name)
        # never the value itself: it is a key
        self.note(
            at,
            "a literal key is not copied (Sealgate's config holds references only); the "
            f"deployment reads env:{variable}: set it, or put the key in Vault (docs/secrets.md)",
            carried=True,
        )
        return f"env:{variable}"

    def identify(self, deployment: dict[str, Any]) -> str:
        """The deployment's id; a second deployment with the same model and provider gets one."""
        if "id" in deployment:
            return str(deployment["id"])
        base = f"{deployment['model']}/{deployment['provider']}"
        taken = {d.get("id") or f"{d['model']}/{d['provider']}" for d in self.deployments}
        if base not in taken:
            return base
        n = 2
        while f"{base}-{n}" in taken:
            n += 1
        deployment["id"] = f"{base}-{n}"
        return str(deployment["id"])

    def prices(self, info: dict[str, Any], at: tuple[Any, ...]) -> dict[str, str] | None:
        per_token = info.get("input_cost_per_token")
        if per_token is None:
            return None
        try:
            prices = {"input": _per_million(per_token)}
            if info.get("output_cost_per_token") is not None:
                prices["output"] = _per_million(info["output_cost_per_token"])
        except (ValueError, ArithmeticError):
            self.note(at, "costs per token must be numbers")
            return None
        return prices

    # -- settings ----------------------------------------------------------------------------
    def setting(self, section: str, key: str) -> Any:
        block = self.data.get(section)
        return block.get(key) if isinstance(block, dict) else None

    def router_settings(self) -> None:
        block = self.data.get("router_settings") or {}
        if not isinstance(block, dict):
            self.note(("router_settings",), "must be a mapping")
            return
        at = ("router_settings",)
        for key, value in block.items():
            if key == "routing_strategy":
                if value not in STRATEGIES:
                    self.note((*at, key), f"no Sealgate strategy for {value!r}")
                elif STRATEGIES[value] is not None:
                    for model in self.models():
                        self.groups.setdefault(model, {})["strategy"] = STRATEGIES[value]
            elif key == "num_retries":
                self.retries(value, (*at, key))
            elif key == "cooldown_time" and _number(value) and value > 0:
                self.router["cooldown_seconds"] = float(value)
            elif key == "allowed_fails" and isinstance(value, int) and value >= 0:
                self.router["breaker"] = {"failures": min(value + 1, 1000)}
            elif key == "timeout" and _number(value):
                pass  # every deployment's timeouts.total, above
            elif key in FALLBACK_CLASSES:
                self.fallbacks(value, FALLBACK_CLASSES[key], (*at, key))
            elif key in ("redis_host", "redis_port"):
                pass  # below
            elif key == "redis_password":
                self.note(
                    (*at, key),
                    "a Redis password is not put in the config (Sealgate refuses one in the URL);"
                    " use Redis ACLs on a private network, or TLS (rediss://)",
                )
            else:
                self.note((*at, key), WHY.get(key, "no Sealgate equivalent"))
        host = block.get("redis_host")
        if isinstance(host, str):
            if host.startswith(ENV_PREFIX):
                self.note((*at, "redis_host"), "write the Redis address in place of the reference")
            else:
                port = block.get("redis_port", 6379)
                self.out.config["governance_redis"] = f"redis://{host}:{port}/0"

    def retries(self, value: Any, at: tuple[Any, ...]) -> None:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            if value > 10:
                self.note(at, "Sealgate allows at most 10 retries: 10 is used", carried=True)
            self.router["retries"] = min(value, 10)
        else:
            self.note(at, "must be a non-negative integer")

    def fallbacks(self, value: Any, kind: str, at: tuple[Any, ...]) -> None:
        if not isinstance(value, list):
            self.note(at, "expected a list of {model: [fallbacks]}")
            return
        known = set(self.models())
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                self.note((*at, index), "expected {model: [fallbacks]}")
                continue
            for model, targets in item.items():
                names = [targets] if isinstance(targets, str) else list(targets or [])
                missing = [n for n in [model, *names] if n not in known]
                if missing:
                    self.note((*at, index), f"names models with no deployment: {missing}")
                    continue
                if kind == "general":
                    self.router.setdefault("fallbacks", {})[model] = names
                else:
                    group = self.groups.setdefault(model, {})
                    group.setdefault("fallbacks", {})[kind] = names

    def litellm_settings(self) -> None:
        block = self.data.get("litellm_settings") or {}
        if not isinstance(block, dict):
            self.note(("litellm_settings",), "must be a mapping")
            return
        at = ("litellm_settings",)
        for key, value in block.items():
            if key == "num_retries":
                self.retries(value, (*at, key))
            elif key == "request_timeout" and _number(value):
                for deployment in self.deployments:
                    deployment.setdefault("timeouts", {"total": float(value)})
            elif key in FALLBACK_CLASSES:
                self.fallbacks(value, FALLBACK_CLASSES[key], (*at, key))
            elif key == "cache":
                self.cache(value, block.get("cache_params"), at)
            elif key == "cache_params":
                pass  # with cache
            else:
                self.note((*at, key), WHY.get(key, "no Sealgate equivalent"))

    def cache(self, enabled: Any, params: Any, at: tuple[Any, ...]) -> None:
        if enabled is not True:
            return
        params = params if isinstance(params, dict) else {}
        kind = params.get("type", "local")
        cache: dict[str, Any] = {}
        if kind == "redis":
            host = params.get("host")
            if isinstance(host, str) and not host.startswith(ENV_PREFIX):
                self.out.config.setdefault(
                    "governance_redis", f"redis://{host}:{params.get('port', 6379)}/0"
                )
            if "governance_redis" not in self.out.config:
                self.note((*at, "cache_params"), "a redis cache needs a literal Redis host")
                return
            cache["backend"] = "redis"
        elif kind not in ("local", "in-memory"):
            self.note((*at, "cache_params", "type"), f"Sealgate has no {kind} cache backend")
            return
        if _number(params.get("ttl")) and params["ttl"] > 0:
            cache["ttl_seconds"] = float(params["ttl"])
        for key in params:
            if key not in ("type", "host", "port", "ttl"):
                self.note((*at, "cache_params", key), "no Sealgate equivalent")
        self.out.config["cache"] = cache

    def general_settings(self) -> None:
        block = self.data.get("general_settings") or {}
        if not isinstance(block, dict):
            self.note(("general_settings",), "must be a mapping")
            return
        at = ("general_settings",)
        for key, value in block.items():
            if key == "database_url" and isinstance(value, str):
                parts = urlsplit(value)
                if value.startswith(ENV_PREFIX) or parts.password:
                    self.note(
                        (*at, key),
                        "storage.url is written in the config and must hold no password: write "
                        "postgresql://host/db and give the password through libpq (PGPASSFILE)",
                    )
                elif parts.scheme in ("postgres", "postgresql"):
                    url = "postgresql" + value[len(parts.scheme) :]
                    self.out.config["storage"] = {"url": url}
                else:
                    self.note((*at, key), "Sealgate stores its state in PostgreSQL or SQLite")
            else:
                self.note((*at, key), WHY.get(key, "no Sealgate equivalent"))

    def models(self) -> list[str]:
        return sorted({d["model"] for d in self.deployments})

    def run(self) -> Conversion:
        models = self.data.get("model_list")
        if not isinstance(models, list) or not models:
            raise LiteLLMConfigError("no model_list: not a LiteLLM proxy config")
        for index, entry in enumerate(models):
            self.model(index, entry)
        self.router_settings()
        self.litellm_settings()
        self.general_settings()
        for key in self.data:
            if key not in ("model_list", "router_settings", "litellm_settings", "general_settings"):
                self.note((key,), WHY.get(key, "no Sealgate equivalent"))
        return self.finish()

    def finish(self) -> Conversion:
        out = self.out.config
        redis = out.pop("governance_redis", None)
        config: dict[str, Any] = {"deployments": self.deployments}
        for model in self.weighted:
            self.groups.setdefault(model, {}).setdefault("strategy", "weighted")
        if self.groups:
            self.router["groups"] = {k: self.groups[k] for k in sorted(self.groups)}
        if self.router:
            config["router"] = self.router
        governance: dict[str, Any] = {}
        if redis is not None:
            governance["counters"] = "redis"
            governance["redis"] = {"url": redis}
        if self.governance:
            governance["deployments"] = self.governance
        if governance:
            config["governance"] = governance
        config.update(out)
        self.out.config = config
        return self.out


def convert(text: str) -> Conversion:
    """A LiteLLM proxy config (YAML text) as a Sealgate config and the notes on it."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise LiteLLMConfigError(f"not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict) or node is None:
        raise LiteLLMConfigError("expected a mapping with model_list")
    lines: dict[tuple[Any, ...], int] = {}
    _lines(node, (), lines)
    return _Converter(data, lines).run()


def _per_million(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError("not a number")
    amount = Decimal(str(value)) * 1_000_000
    return format(amount.quantize(Decimal("0.000001")).normalize(), "f")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _variable(model: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", model.upper()).strip("_") + "_API_KEY"


def _private(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost") or host.endswith(".internal"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host.endswith(".svc") or host.endswith(".cluster.local") or "." not in host
    return address.is_private or address.is_loopback or address.is_link_local
