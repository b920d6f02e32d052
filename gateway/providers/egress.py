"""Egress: a provider key goes only to the host the operator pinned for it.

Two checks, both failing closed:

- at start-up, ``enforce`` compares every deployment's pinned host with the allowlist in
  ``policies/egress.yaml`` (hosts per provider) and refuses the configuration when a host is not on
  it; an IP-literal host that is not a public address is refused unless the deployment sets
  ``allow_private_network`` (a local model server);
- at connect time, each deployment's connection pool resolves names through a ``GuardedResolver``
  that answers only for that deployment's pinned host and refuses when any address the name
  resolves to is private, loopback, link-local (169.254.169.254, the cloud metadata service),
  or otherwise not global, unless the deployment allows private networks. The check applies to the
  addresses actually connected to, so a DNS name that points at the metadata service is caught.

The MCP gateway's upstream servers (``gateway.mcp.upstream``) get the same two checks:
``enforce_mcp`` at start-up, and a ``GuardedResolver`` for each request's connection; so do the
sinks (``enforce_sinks``, under the name ``sink``; ``governance.sinks``) and the trace exporter's
collector (``enforce_tracing``, and ``checked_address`` for its blocking connection).

Redirects are never followed (``pool.py``), so the request that carries a key cannot be steered
to another host after the check.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from gateway.config import Deployment, OtlpLogsSink, S3Sink, Tracing, WebhookSink, aws
from gateway.config.mcp import McpServer
from gateway.errors import ConfigError

log = logging.getLogger(__name__)

POLICY_FILE = "egress.yaml"
POLICY_VERSION = 1
SINK = "sink"  # the allowlist's name for the sinks' hosts (webhook, S3, OTLP logs)
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class EgressPolicy:
    source: str
    hosts: Mapping[str, tuple[str, ...]]  # provider -> host patterns

    def allows(self, provider: str, host: str) -> bool:
        return any(host_matches(p, host) for p in self.hosts.get(provider, ()))


def host_matches(pattern: str, host: str) -> bool:
    """``api.openai.com`` matches itself; ``*.openai.azure.com`` matches any name under it;
    a ``*`` label after the first stands for exactly one label (a region:
    ``bedrock-runtime.*.amazonaws.com`` matches ``bedrock-runtime.us-east-1.amazonaws.com``)."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    if "*" in pattern:
        wanted, labels = pattern.split("."), host.split(".")
        return len(wanted) == len(labels) and all(
            w == label or (w == "*" and _LABEL.match(label) is not None)
            for w, label in zip(wanted, labels, strict=True)
        )
    return host == pattern


_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def ip_of(host: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_public(address: IPAddress) -> bool:
    return address.is_global and not address.is_multicast


# -- the policy file ----------------------------------------------------------------------------


def load_policy(path: Path) -> EgressPolicy:
    source = str(path)
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except OSError as exc:
        raise ConfigError(source, "(file)", f"cannot be read: {exc.strerror}") from None
    except yaml.YAMLError:
        raise ConfigError(source, "(file)", "is not valid YAML") from None
    return parse_policy(data, source)


def parse_policy(data: Any, source: str) -> EgressPolicy:
    if not isinstance(data, dict) or set(data) != {"version", "providers"}:
        raise ConfigError(source, "(top level)", "expected exactly the keys version and providers")
    if data["version"] != POLICY_VERSION:
        raise ConfigError(source, "version", f"expected {POLICY_VERSION}")
    providers = data["providers"]
    if not isinstance(providers, dict):
        raise ConfigError(source, "providers", "expected a mapping of provider to {hosts: [...]}")
    hosts: dict[str, tuple[str, ...]] = {}
    for name, entry in providers.items():
        key = f"providers.{name}"
        if not isinstance(entry, dict) or set(entry) != {"hosts"}:
            raise ConfigError(source, key, "expected exactly the key hosts")
        listed = entry["hosts"]
        if not isinstance(listed, list) or not all(isinstance(h, str) and h for h in listed):
            raise ConfigError(source, f"{key}.hosts", "expected a list of host names")
        for pattern in listed:
            bare = pattern.removeprefix("*.")
            labels = bare.split(".")
            inner = [label for label in labels if label != "*"]  # one label each
            # one inner '*' at most, under a domain of two labels or more (never 'api.*.com')
            stars = [i for i, label in enumerate(labels) if label == "*"]
            placed = not stars or (len(stars) == 1 and 0 < stars[0] < len(labels) - 2)
            if (
                any("*" in label for label in inner)
                or not placed
                or "/" in bare
                or ":" in bare
                or not inner
            ):
                raise ConfigError(
                    source,
                    f"{key}.hosts",
                    f"{pattern!r} is not a host name, '*.domain' or 'name.*.domain'",
                )
        hosts[str(name)] = tuple(listed)
    return EgressPolicy(source, hosts)


# -- start-up check -----------------------------------------------------------------------------
def pinned_host(deployment: Deployment) -> str | None:
    if deployment.base_url is None:
        return None
    return urlsplit(deployment.base_url).hostname


def is_local_literal(host: str) -> bool:
    address = ip_of(host)
    return host.lower() == "localhost" or (address is not None and not is_public(address))


def enforce(
    deployments: list[Deployment], policies: Path, policy: EgressPolicy | None = None
) -> None:
    """Refuse a configuration that would send a key outside the allowlist. The policy file
    (``policies``/egress.yaml) is read only if some deployment needs it."""
    for index, deployment in enumerate(deployments):
        for where, host in _hosts(index, deployment):
            policy = _enforce_host(deployment, where, host, policies, policy)


def _hosts(index: int, deployment: Deployment) -> list[tuple[str, str]]:
    """Every host a deployment's credential goes to: its pinned base URL and, for a Bedrock
    deployment with web identity, the STS endpoint the token is exchanged at."""
    hosts: list[tuple[str, str]] = []
    host = pinned_host(deployment)
    if deployment.provider == "mock" or host is None:
        return hosts
    hosts.append((f"deployments.{index}.base_url", host))
    if (sts := sts_host(deployment)) is not None:
        hosts.append((f"deployments.{index}.aws.web_identity.sts_endpoint", sts))
    return hosts


def sts_host(deployment: Deployment) -> str | None:
    endpoint = aws.sts_endpoint(deployment.aws, pinned_host(deployment))
    return urlsplit(endpoint).hostname if endpoint is not None else None


def _enforce_host(
    deployment: Deployment, where: str, host: str, policies: Path, policy: EgressPolicy | None
) -> EgressPolicy | None:
    if is_local_literal(host):
        if not deployment.allow_private_network:
            raise ConfigError(
                "config",
                where,
                f"{host} is a private, loopback or link-local address; set "
                "allow_private_network: true on this deployment for a local model server",
            )
        return policy
    if policy is None:
        policy = load_policy(policies / POLICY_FILE)
    if not policy.allows(deployment.provider, host):
        raise ConfigError(
            "config",
            where,
            f"host {host} is not on the egress allowlist for provider "
            f"{deployment.provider} ({policy.source})",
        )
    return policy


def enforce_mcp(
    servers: list[McpServer], policies: Path, policy: EgressPolicy | None = None
) -> None:
    """The same start-up check for the MCP gateway's upstream servers: each server's host must
    be on the allowlist under the provider name ``mcp``, or a private address the server
    allows explicitly (``allow_private_network``)."""
    for index, server in enumerate(servers):
        where = f"mcp.servers.{index}.url"
        if server.transport == "stdio":
            continue  # a local process: nothing to pin (allowed only by mcp.allow_stdio)
        if is_local_literal(server.host):
            if not server.allow_private_network:
                raise ConfigError(
                    "config",
                    where,
                    f"{server.host} is a private, loopback or link-local address; set "
                    "allow_private_network: true on this server for a local MCP server",
                )
            continue
        if policy is None:
            policy = load_policy(policies / POLICY_FILE)
        if not policy.allows("mcp", server.host):
            raise ConfigError(
                "config",
                where,
                f"host {server.host} is not on the egress allowlist for provider mcp "
                f"({policy.source})",
            )


def enforce_sinks(
    sinks: Sequence[WebhookSink | S3Sink | OtlpLogsSink],
    policies: Path,
    policy: EgressPolicy | None = None,
) -> None:
    """The same start-up check for the sinks (webhook, S3, OTLP logs): each sink's host must be
    on the allowlist under the name ``sink``, or a private literal the sink allows explicitly
    (``allow_private_network``; the config refuses such a literal without it)."""
    for index, sink in enumerate(sinks):
        where = f"sinks.{index}.{sink.address_key}"
        policy = _enforce_receiver(where, sink.host, sink.allow_private_network, policies, policy)


def enforce_tracing(
    tracing: Tracing, policies: Path, policy: EgressPolicy | None = None
) -> EgressPolicy | None:
    """The trace exporter's collector, checked as a sink is (under the name ``sink``), except
    that a loopback collector (the default endpoint: an agent beside the gateway) needs no flag:
    loopback reaches no other machine and no metadata service."""
    if not tracing.enabled or is_loopback(tracing.host):
        return policy
    where = "tracing.endpoint"
    return _enforce_receiver(where, tracing.host, tracing.allow_private_network, policies, policy)


def _enforce_receiver(
    where: str, host: str, allow_private: bool, policies: Path, policy: EgressPolicy | None
) -> EgressPolicy | None:
    if is_local_literal(host):
        if not allow_private:
            raise ConfigError(
                "config",
                where,
                f"{host} is a private, loopback or link-local address; set "
                "allow_private_network: true beside it for a receiver on it",
            )
        return policy
    if policy is None:
        policy = load_policy(policies / POLICY_FILE)
    if not policy.allows(SINK, host):
        raise ConfigError(
            "config",
            where,
            f"host {host} is not on the egress allowlist for {SINK} ({policy.source}); "
            f"add it under providers.{SINK}.hosts",
        )
    return policy


def is_loopback(host: str) -> bool:
    address = ip_of(host)
    return host.lower() == "localhost" or (address is not None and address.is_loopback)


def checked_address(host: str, port: int, allow_private: bool) -> tuple[str, int]:
    """A blocking connection's guard (the trace exporter's thread): the address to connect to
    for ``host``, refused when it is not public and neither loopback (for a loopback name or
    literal) nor allowed. The address returned is the one checked, so a name that resolves
    elsewhere by the time of the connect cannot slip past."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not found:
        raise EgressRefused(f"egress to {host} refused: it resolves to no address")
    literal = str(found[0][4][0])
    address = ip_of(literal)
    if address is not None and (
        is_public(address) or allow_private or (is_loopback(host) and address.is_loopback)
    ):
        return literal, port
    log.warning(
        "egress refused: the host resolves to a non-public address",
        extra={"sg_host": host, "sg_address": literal},
    )
    raise EgressRefused(f"egress to {host} refused: non-public address")


# -- connect-time guard -------------------------------------------------------------------------
class EgressRefused(OSError):
    """A connection the egress rules forbid (aiohttp reports it as a connection error)."""


class GuardedResolver(AbstractResolver):
    """Resolves only the deployment's pinned host, and only to addresses it may reach."""

    def __init__(
        self, host: str, allow_private: bool, inner: AbstractResolver | None = None
    ) -> None:
        self._host = host.lower().rstrip(".")
        self._allow_private = allow_private
        self._inner = inner  # the system resolver, made on first use (it needs a running loop)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host.lower().rstrip(".") != self._host:
            log.warning("egress refused: not the pinned host", extra={"sg_host": host})
            raise EgressRefused(f"egress to {host} refused: not this deployment's pinned host")
        if self._inner is None:
            self._inner = ThreadedResolver()
        results = await self._inner.resolve(host, port, family)
        if not self._allow_private:
            for result in results:
                address = ip_of(result["host"])
                if address is None or not is_public(address):
                    log.warning(
                        "egress refused: the host resolves to a non-public address",
                        extra={"sg_host": host, "sg_address": result["host"]},
                    )
                    raise EgressRefused(f"egress to {host} refused: non-public address")
        return results

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


def guarded_resolver(deployment: Deployment) -> GuardedResolver | None:
    host = pinned_host(deployment)
    if host is None:
        return None
    return GuardedResolver(host, deployment.allow_private_network)
