"""Building the broker from the configuration, at start-up, before serving."""

from __future__ import annotations

import logging

from gateway.config import GatewayConfig
from gateway.errors import ConfigError
from gateway.secrets.broker import Resolver, SecretBroker, backend_of
from gateway.secrets.errors import BackendError, BackendUnavailable
from gateway.secrets.vault import VaultResolver

log = logging.getLogger(__name__)


def build_broker(config: GatewayConfig) -> SecretBroker:
    """The broker for ``config``. With a ``secrets.vault`` section, log in to Vault now: a login
    Vault refuses is a configuration error that stops start-up; a Vault that cannot be reached
    is not (the gateway starts not ready and logs in when Vault answers)."""
    resolvers: dict[str, Resolver] = {}
    vault = config.secrets.vault
    if vault is not None:
        resolver = VaultResolver(vault)
        try:
            resolver.login_blocking()
        except BackendUnavailable as exc:
            log.warning(
                "Vault is not reachable at start-up; not ready until it is",
                extra={"sg_reason": str(exc)},
            )
        except BackendError as exc:
            raise ConfigError("config", "secrets.vault.auth", str(exc)) from None
        resolvers["vault"] = resolver
    broker = SecretBroker(
        resolvers, ttl=config.secrets.ttl_seconds, stale=config.secrets.stale_seconds
    )
    for index, deployment in enumerate(config.deployments):
        ref = deployment.credential_ref
        if ref is not None and not broker.supports(ref):
            raise ConfigError(
                "config",
                f"deployments.{index}.credential",
                f"a {backend_of(ref)} reference needs a secrets.{backend_of(ref)} section",
            )
    return broker
