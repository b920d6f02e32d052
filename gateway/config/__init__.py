"""Typed, strict configuration.

The file is YAML. Unknown keys are errors; every error names the file, the key (with its line when
the YAML parser knows it) and what was expected. Defaults are the named constants below. A
deployment holds a credential *reference*; a literal key is refused.

What each provider needs of a deployment (a base URL, a credential, its own options) is the
provider module's to say (``gateway.providers.registry``); config sits below the providers, so the
composition root hands the registry in as ``providers`` and the checks run inside validation, with
the same file, key and line as every other error.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gateway.config import fields
from gateway.config.aws import Aws
from gateway.config.cache import Cache
from gateway.config.conversations import Conversations
from gateway.config.governance import Governance
from gateway.config.guardrails import Guardrails
from gateway.config.mcp import Mcp
from gateway.config.routing import Router as Router
from gateway.config.secrets import Vault
from gateway.config.ui import Ui
from gateway.errors import ConfigError
from gateway.refs import CredentialRef, parse_ref

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 120.0
DEFAULT_TOTAL_TIMEOUT = 600.0
DEFAULT_POOL_SIZE = 256
DEFAULT_AUTH_CACHE_SECONDS = 30.0
DEFAULT_STORAGE_TIMEOUT_SECONDS = 5.0
DEFAULT_SECRET_TTL_SECONDS = 300.0
MAX_SECRET_TTL_SECONDS = 3600.0
MAX_SECRET_STALE_SECONDS = 900.0
# What one client connection may hold (gateway.api.connections), and what one upstream answer may
# be (gateway.providers.http): every resource a caller or an upstream can make the gateway spend
# is bounded, with these defaults (SECURITY.md, "Limits").
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
DEFAULT_MAX_HEADERS = 100
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 60.0
DEFAULT_IDLE_TIMEOUT = 5.0
DEFAULT_MAX_CONNECTIONS = 1024
DEFAULT_OTLP_TRACES_ENDPOINT = "http://127.0.0.1:4318/v1/traces"
DEFAULT_OTLP_TIMEOUT = 10.0
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_STREAM_BYTES = 256 * 1024 * 1024
DEFAULT_MAX_EVENT_BYTES = 1024 * 1024
DEFAULT_SINK_BATCH = 100
DEFAULT_SINK_TIMEOUT = 10.0
MAX_EVENT_BYTES = 64 * 1024 * 1024  # the most max_event_bytes may be set to

PositiveSeconds = Annotated[float, Field(gt=0, le=86400)]


class ProviderRules(Protocol):
    """What config needs to know of a provider: whether a deployment satisfies it."""

    def problem(self, deployment: Deployment) -> str | None: ...


Path_ = tuple[str | int, ...]


class Located(ValueError):
    """Problems a cross-field check found, each at its own key path (relative to the model the
    check runs on), so the loader can name the key and its line rather than the model."""

    def __init__(self, problems: list[tuple[Path_, str]]) -> None:
        super().__init__("; ".join(message for _, message in problems))
        self.problems = problems


def _providers(info: ValidationInfo) -> Mapping[str, ProviderRules]:
    providers: Mapping[str, ProviderRules] | None = (info.context or {}).get("providers")
    if providers is None:
        raise TypeError(
            "a deployment is validated with the provider registry: "
            "Deployment.model_validate(data, context={'providers': PROVIDERS}), "
            "or gateway.serve.parse_config"
        )
    return providers


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Timeouts(Strict):
    connect: PositiveSeconds = DEFAULT_CONNECT_TIMEOUT
    read: PositiveSeconds = DEFAULT_READ_TIMEOUT
    total: PositiveSeconds = DEFAULT_TOTAL_TIMEOUT


class Deployment(Strict):
    model: str = Field(min_length=1, description="the public model name clients ask for")
    provider: str = Field(min_length=1)
    id: str | None = None
    upstream_model: str | None = None
    base_url: str | None = None
    credential: str | None = None
    api_version: str | None = None
    # anthropic: the anthropic-beta values forwarded (None: the built-in list, docs/anthropic.md)
    anthropic_beta: tuple[str, ...] | None = None
    timeouts: Timeouts = Timeouts()
    pool_size: int = Field(DEFAULT_POOL_SIZE, ge=1, le=10000)
    allow_private_network: bool = False
    max_response_bytes: int = Field(DEFAULT_MAX_RESPONSE_BYTES, ge=1024, le=1 << 32)
    max_stream_bytes: int = Field(DEFAULT_MAX_STREAM_BYTES, ge=1024, le=1 << 40)
    max_event_bytes: int = Field(DEFAULT_MAX_EVENT_BYTES, ge=1024, le=MAX_EVENT_BYTES)
    weight: float = Field(1.0, gt=0, le=1_000_000)  # its share under the weighted strategy
    aws: Aws | None = None  # bedrock: region, web identity (gateway/config/aws.py)
    rerank: bool | None = None  # an OpenAI-compatible server that also serves Cohere's rerank
    # What the deployment serves, for its health probe (LiteLLM's ``model_info.mode``): a
    # one-token chat, the embedding of one word, or the rerank of one document.
    mode: Literal["chat", "embeddings", "rerank"] = "chat"

    _credential = field_validator("credential")(fields.reference)

    @field_validator("base_url")
    @classmethod
    def _absolute_http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        fields.http_url(value, "https://api.openai.com/v1", "use 'credential' with a reference")
        parts = urlsplit(value)
        if parts.query or parts.fragment:
            raise ValueError("expected a base URL without query or fragment")
        return value.rstrip("/")

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str, info: ValidationInfo) -> str:
        providers = _providers(info)
        if value not in providers:
            raise ValueError(f"unknown provider {value!r}; known: {', '.join(sorted(providers))}")
        return value

    @model_validator(mode="after")
    def _provider_needs(self, info: ValidationInfo) -> Deployment:
        problem = _providers(info)[self.provider].problem(self)
        if problem is not None:
            raise ValueError(problem)
        return self

    @property
    def credential_ref(self) -> CredentialRef | None:
        return parse_ref(self.credential) if self.credential else None

    @property
    def name(self) -> str:
        return self.id or f"{self.model}/{self.provider}"

    # -- model wildcards (issue 14): ``model: anthropic/*`` serves every ``anthropic/<name>`` --
    @model_validator(mode="after")
    def _wildcard_rules(self) -> Deployment:
        if "*" in self.model:
            if not self.model.endswith("*") or self.model.count("*") != 1:
                raise ValueError("a wildcard model ends in its only '*', e.g. anthropic/*")
            if self.upstream_model is not None:
                raise ValueError(
                    "a wildcard model takes its upstream model from the name asked for; "
                    "upstream_model does not apply"
                )
            if self.provider in ("azure", "bedrock", "gemini", "vertex_ai"):
                raise ValueError(
                    f"{self.provider} deployments name one upstream model in the URL they sign "
                    "or route by: no wildcard"
                )
        return self

    @property
    def wildcard(self) -> bool:
        return self.model.endswith("*")

    def upstream_model_for(self, requested: str) -> str:
        """The upstream model a request for public model ``requested`` is sent as: the part a
        wildcard matched, else ``upstream_model`` (or the public name)."""
        if self.wildcard and requested.startswith(self.model[:-1]):
            return requested[len(self.model) - 1 :]
        return self.upstream_model or self.model


class Server(Strict):
    max_body_bytes: int = Field(DEFAULT_MAX_BODY_BYTES, ge=1024, le=256 * 1024 * 1024)
    auth_cache_seconds: float = Field(DEFAULT_AUTH_CACHE_SECONDS, ge=0, le=3600)
    max_header_bytes: int = Field(DEFAULT_MAX_HEADER_BYTES, ge=1024, le=1024 * 1024)
    max_headers: int = Field(DEFAULT_MAX_HEADERS, ge=8, le=10000)
    header_timeout_seconds: float = Field(DEFAULT_HEADER_TIMEOUT, gt=0, le=300)
    body_timeout_seconds: float = Field(DEFAULT_BODY_TIMEOUT, gt=0, le=3600)
    idle_timeout_seconds: float = Field(DEFAULT_IDLE_TIMEOUT, gt=0, le=3600)
    max_connections: int = Field(DEFAULT_MAX_CONNECTIONS, ge=1, le=100_000)


class Storage(Strict):
    url: str | None = None  # default: sqlite under the data directory
    # The longest any one database call may take (connect, statement, lock wait, pool wait).
    timeout_seconds: float = Field(DEFAULT_STORAGE_TIMEOUT_SECONDS, ge=0.5, le=300)


class Secrets(Strict):
    """How long provider keys live in memory, and where Vault/OpenBao is (docs/secrets.md)."""

    ttl_seconds: float = Field(DEFAULT_SECRET_TTL_SECONDS, gt=0, le=MAX_SECRET_TTL_SECONDS)
    stale_seconds: float = Field(0.0, ge=0, le=MAX_SECRET_STALE_SECONDS)
    vault: Vault | None = None


class Logging(Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = True  # one JSON line per request on the sealgate.access logger


class Tracing(Strict):
    """OpenTelemetry traces over OTLP/HTTP (off unless ``enabled``). ``headers`` maps a header
    name to a credential reference (``env:`` or ``file:``, read at start-up), never a value."""

    enabled: bool = False
    endpoint: str = DEFAULT_OTLP_TRACES_ENDPOINT
    headers: dict[str, str] = {}
    sample_ratio: float = Field(1.0, ge=0, le=1)
    propagate_upstream: bool = False  # send W3C traceparent to the deployments
    # a collector on a private network (a node's agent, a cluster service); loopback needs none
    allow_private_network: bool = False
    service_name: str = Field("sealgate", min_length=1, max_length=200)
    timeout_seconds: PositiveSeconds = DEFAULT_OTLP_TIMEOUT

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str) -> str:
        example = "http://collector:4318/v1/traces"
        return fields.http_url(value, example, "put them in tracing.headers, by reference")

    @property
    def host(self) -> str:
        return urlsplit(self.endpoint).hostname or ""

    @field_validator("headers")
    @classmethod
    def _references(cls, value: dict[str, str]) -> dict[str, str]:
        for name, ref in value.items():
            if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", name):
                raise ValueError(f"header name {name!r} is not a valid HTTP header name")
            if parse_ref(ref).scheme not in ("env", "file"):
                raise ValueError(f"header {name}: only env: and file: references are read here")
        return value


def _sink_url(value: str) -> str:
    example = "https://siem.example.com/sealgate"
    return fields.http_url(value, example, "they go in the sink's references")


class SinkBase(Strict):
    """What every sink has (docs/observability.md): its name (the queue's and the metrics'),
    the batch it holds in memory, its timeout and backoff, and whether its host may be a
    private address."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    allow_private_network: bool = False
    batch_size: int = Field(DEFAULT_SINK_BATCH, ge=1, le=10000)  # events per delivery
    timeout_seconds: PositiveSeconds = DEFAULT_SINK_TIMEOUT
    backoff_seconds: PositiveSeconds = 0.5  # the first retry's wait, doubled up to backoff_max
    backoff_max_seconds: PositiveSeconds = 60.0
    poll_seconds: PositiveSeconds = 1.0  # how often an idle sink looks for new events


class WebhookSink(SinkBase):
    """POSTs JSON batches of events, signed with HMAC-SHA256 under ``secret``, a credential
    reference (env:, file: or vault:); ``url``'s host is the only one it connects to."""

    type: Literal["webhook"]
    url: str
    secret: str

    _url = field_validator("url")(_sink_url)
    _secret = field_validator("secret")(fields.reference)

    @property
    def secret_ref(self) -> CredentialRef:
        return parse_ref(self.secret)

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def address_key(self) -> str:
        return "url"

    def refs(self) -> dict[str, CredentialRef]:
        return {"secret": self.secret_ref}


class S3Sink(SinkBase):
    """PUTs each batch as one JSONL object (path-style: ``endpoint/bucket/key``), signed with
    AWS SigV4; the access key id and secret are credential references."""

    type: Literal["s3"]
    endpoint: str  # e.g. https://s3.eu-west-1.amazonaws.com, or a MinIO / Ceph address
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    prefix: str = Field("sealgate/", pattern=r"^[A-Za-z0-9_./-]{0,200}$")
    region: str = Field("us-east-1", pattern=r"^[a-z0-9-]{1,32}$")
    access_key_id: str
    secret_access_key: str

    _endpoint = field_validator("endpoint")(_sink_url)
    _keys = field_validator("access_key_id", "secret_access_key")(fields.reference)

    @property
    def host(self) -> str:
        return urlsplit(self.endpoint).hostname or ""

    @property
    def address_key(self) -> str:
        return "endpoint"

    def refs(self) -> dict[str, CredentialRef]:
        return {
            "access_key_id": parse_ref(self.access_key_id),
            "secret_access_key": parse_ref(self.secret_access_key),
        }


class OtlpLogsSink(SinkBase):
    """POSTs each batch as OTLP/HTTP log records (protobuf) to ``endpoint`` (a collector's
    ``/v1/logs``); ``headers`` maps a header name to a credential reference (env:, file: or
    vault:), fetched through the secret broker, never a value."""

    type: Literal["otlp_logs"]
    endpoint: str  # e.g. https://otel-collector.example.com:4318/v1/logs
    headers: dict[str, str] = {}
    service_name: str = Field("sealgate", min_length=1, max_length=200)

    _endpoint = field_validator("endpoint")(_sink_url)

    @field_validator("headers")
    @classmethod
    def _header_references(cls, value: dict[str, str]) -> dict[str, str]:
        for name, ref in value.items():
            if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", name):
                raise ValueError(f"header name {name!r} is not a valid HTTP header name")
            try:
                parse_ref(ref)
            except ValueError:
                raise ValueError(
                    f"header {name}: expected a credential reference (env:, file: or vault:), "
                    "never a value"
                ) from None
        return value

    @property
    def host(self) -> str:
        return urlsplit(self.endpoint).hostname or ""

    @property
    def address_key(self) -> str:
        return "endpoint"

    def header_refs(self) -> dict[str, CredentialRef]:
        return {name: parse_ref(ref) for name, ref in self.headers.items()}

    def refs(self) -> dict[str, CredentialRef]:
        return {f"headers.{name}": ref for name, ref in self.header_refs().items()}


Sink = Annotated[WebhookSink | S3Sink | OtlpLogsSink, Field(discriminator="type")]


class Verify(Strict):
    mode: Literal["enforce", "warn", "off"] = "enforce"
    interval_seconds: float = Field(5.0, ge=0, le=86400)
    locks: list[str] = []
    policies_dir: str | None = None
    policy_key: str | None = None  # PEM public key that must have signed policies/MANIFEST.json


class GatewayConfig(Strict):
    deployments: list[Deployment] = Field(min_length=1)
    router: Router = Router()
    server: Server = Server()
    storage: Storage = Storage()
    secrets: Secrets = Secrets()
    logging: Logging = Logging()
    verify: Verify = Verify()
    governance: Governance = Governance()
    tracing: Tracing = Tracing()
    cache: Cache | None = None
    conversations: Conversations = Conversations()  # previous_response_id's state
    guardrails: Guardrails = Guardrails()
    mcp: Mcp = Mcp()
    sinks: list[Sink] = []
    ui: Ui = Ui()  # the admin dashboard and OpenID Connect sign-in (gateway/config/ui.py)

    @model_validator(mode="after")
    def _cross_references(self) -> GatewayConfig:
        """Names that must refer to something elsewhere in the file."""
        problems: list[tuple[Path_, str]] = []
        names = {d.model for d in self.deployments}
        prefixes = [n[:-1] for n in names if n.endswith("*")]  # wildcards (issue 14)
        for where, name in self.router.names():
            if name not in names and not any(name.startswith(p) for p in prefixes):
                problems.append((where, f"names unknown model {name!r}"))
        for alias in self.router.aliases:  # issue 14: an alias may not hide a deployed model
            if alias in names:
                problems.append((("router", "aliases", alias), f"{alias!r} is a deployed model"))
        seen: dict[str, int] = {}
        for index, deployment in enumerate(self.deployments):
            if deployment.name in seen:
                problems.append(
                    (
                        ("deployments", index, "id"),
                        f"deployment id {deployment.name!r} is already used by deployments."
                        f"{seen[deployment.name]}; ids must be unique",
                    )
                )
            seen.setdefault(deployment.name, index)
        for name in self.governance.deployments:
            if name not in seen:
                known = ", ".join(sorted(seen))
                problems.append(
                    (("governance", "deployments", name), f"names no deployment; known: {known}")
                )
        if self.cache and self.cache.backend == "redis" and self.governance.redis is None:
            problems.append(
                (("cache", "backend"), "the redis cache needs a governance.redis section")
            )
        if self.conversations.backend == "redis" and self.governance.redis is None:
            problems.append(
                (
                    ("conversations", "backend"),
                    "conversations on redis need a governance.redis section",
                )
            )
        named: dict[str, int] = {}
        for index, sink in enumerate(self.sinks):
            if sink.name in named:
                problems.append(
                    (
                        ("sinks", index, "name"),
                        f"sink name {sink.name!r} is already used by sinks.{named[sink.name]}",
                    )
                )
            named.setdefault(sink.name, index)
            host = sink.host
            if not sink.allow_private_network and _private_literal(host):
                problems.append(
                    (
                        ("sinks", index, sink.address_key),
                        f"{host} is a private, loopback or link-local address; set "
                        "allow_private_network: true on this sink for a receiver on it",
                    )
                )
        if self.secrets.vault is None:
            for key, ref in self.credentials().items():
                if ref.scheme == "vault":
                    path = tuple(int(p) if p.isdigit() else p for p in key.split("."))
                    problems.append(
                        (path, "a vault reference needs a secrets.vault section (docs/secrets.md)")
                    )
        if problems:
            raise Located(problems)
        return self

    def models(self) -> list[str]:
        return sorted({d.model for d in self.deployments})

    def credentials(self) -> dict[str, CredentialRef]:
        """Every credential reference the config names (the deployments', the cache's and the
        conversations' encryption keys, the sinks'), by its config key."""
        found = {
            f"deployments.{index}.credential": ref
            for index, d in enumerate(self.deployments)
            if (ref := d.credential_ref) is not None
        } | {
            f"mcp.servers.{index}.credential": ref
            for index, s in enumerate(self.mcp.servers)
            if (ref := s.credential_ref) is not None
        }
        for index, server in enumerate(self.mcp.servers):
            found |= {f"mcp.servers.{index}.env.{n}": r for n, r in server.env_refs.items()}
        if self.cache is not None and self.cache.encryption_key is not None:
            found["cache.encryption_key"] = parse_ref(self.cache.encryption_key)
        if self.conversations.encryption_key is not None:
            found["conversations.encryption_key"] = parse_ref(self.conversations.encryption_key)
        for index, sink in enumerate(self.sinks):
            found |= {f"sinks.{index}.{key}": ref for key, ref in sink.refs().items()}
        return found


def _private_literal(host: str) -> bool:
    """localhost, or an IP literal that is not a global address (the connect-time guard never
    sees a literal: nothing is resolved)."""
    try:
        return not ipaddress.ip_address(host).is_global
    except ValueError:
        return host.lower().rstrip(".") == "localhost"


BUNDLED_CONFIG = "default-config.yaml"


def load_config(
    path: str | os.PathLike[str] | None, providers: Mapping[str, ProviderRules]
) -> GatewayConfig:
    """Load and validate a config file, or the bundled example when ``path`` is None."""
    if path is None:
        text = resources.files("gateway.data").joinpath(BUNDLED_CONFIG).read_text("utf-8")
        source = f"<bundled {BUNDLED_CONFIG}>"
    else:
        source = str(path)
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise ConfigError(source, "(file)", f"cannot be read: {exc.strerror}") from None
    return parse_config(text, source, providers)


def parse_config(text: str, source: str, providers: Mapping[str, ProviderRules]) -> GatewayConfig:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(file)"
        raise ConfigError(
            source, where, f"is not valid YAML: {getattr(exc, 'problem', exc)}"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(source, "(top level)", "expected a mapping with at least 'deployments'")
    try:
        return GatewayConfig.model_validate(data, context={"providers": providers})
    except ValidationError as exc:
        raise _located(exc, node, source) from None


GUARDRAILS_FILE = "guardrails.yaml"


def guardrails_section(config: GatewayConfig, policies: Path) -> Guardrails:
    """The guardrails the gateway runs: the config's section, or ``policies/guardrails.yaml``
    (the same keys), which the signed policy bundle covers like every file there. Not both: a
    policy has one source, so no one wonders which of two copies is in force."""
    path = policies / GUARDRAILS_FILE
    if not path.exists():
        return config.guardrails
    if config.guardrails != Guardrails():
        raise ConfigError(
            str(path),
            "(file)",
            "the config has a guardrails section too; keep the policies in one of the two",
        )
    return load_guardrails(path)


def load_guardrails(path: Path) -> Guardrails:
    """``policies/guardrails.yaml``, checked as strictly as the config's section."""
    source = str(path)
    try:
        text = path.read_text("utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except OSError as exc:
        raise ConfigError(source, "(file)", f"cannot be read: {exc.strerror}") from None
    except yaml.YAMLError:
        raise ConfigError(source, "(file)", "is not valid YAML") from None
    try:
        return Guardrails.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise _located(exc, node, source) from None


def _located(exc: ValidationError, node: Any, source: str) -> ConfigError:
    """Every problem pydantic found, each at its key and line, in the order a reader meets
    them."""
    found = _problems(exc.errors(include_url=False))
    located = [(_line_of(node, list(path)), path, message) for path, message in found]
    located.sort(key=lambda item: item[0] or 0)
    (key, problem), *more = [_where(line, path, msg) for line, path, msg in located]
    return ConfigError(source, key, problem, more)


def _problems(errors: Any) -> list[tuple[Path_, str]]:
    """Every problem pydantic found, with cross-field ones (``Located``) at their own keys."""
    out: list[tuple[Path_, str]] = []
    for error in errors:
        loc: Path_ = tuple(error["loc"])
        located = (error.get("ctx") or {}).get("error")
        if isinstance(located, Located):
            out += [(loc + path, message) for path, message in located.problems]
        elif error["type"] == "extra_forbidden":
            out.append((loc, "is not a known key"))
        else:
            out.append((loc, str(error["msg"]).removeprefix("Value error, ")))
    return out


def _where(line: int | None, path: Path_, message: str) -> tuple[str, str]:
    key = ".".join(str(p) for p in path) or "(top level)"
    return (f"{key} (line {line})" if line else key), message


def _line_of(node: Any, path: list[Any]) -> int | None:
    """The 1-based line of ``path`` in the composed YAML node tree, as near as it exists."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in path:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    line = key.start_mark.line + 1
                    node = value
                    break
            else:
                return line
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line
