"""Building the broker from the configuration, at start-up, before serving."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterable, Mapping

from gateway.config import Secrets
from gateway.config.secrets import Vault, VaultTLS
from gateway.errors import ConfigError
from gateway.refs import CredentialRef, parse_ref
from gateway.secrets.broker import Resolver, SecretBroker, backend_of
from gateway.secrets.errors import BackendError, BackendUnavailable
from gateway.secrets.local import EnvResolver, take_from_environment

log = logging.getLogger(__name__)


def build_broker(settings: Secrets, credentials: Mapping[str, CredentialRef]) -> SecretBroker:
    """The broker for the ``secrets`` section; ``credentials`` are the references the config
    names, by their config key (``deployments.0.credential``), each checked to have a backend.

    With a ``secrets.vault`` section, log in to Vault now: a login Vault refuses, or a TLS
    channel that does not come up, is a configuration error that stops start-up; a Vault that
    cannot be reached is not (the gateway starts not ready and logs in when Vault answers).
    First, every variable an ``env:`` reference names is taken out of the process environment
    and kept in memory (``gateway.secrets.local``); one that is not set is logged by name,
    with the config key that needs it, and keeps the replica not ready."""
    resolvers: dict[str, Resolver] = {"env": take_environment(settings.vault, credentials)}
    vault = settings.vault
    if vault is not None:
        # issue 23: hvac (several MB resident) only for a gateway configured with Vault
        from gateway.secrets.vault import VaultResolver, VaultTLSError

        check_tls_files(vault.tls)
        resolver = VaultResolver(vault)
        try:
            resolver.login_blocking()
        except VaultTLSError as exc:
            raise ConfigError("config", "secrets.vault", str(exc)) from None
        except BackendUnavailable as exc:
            log.warning(
                "Vault is not reachable at start-up; not ready until it is",
                extra={"sg_reason": str(exc)},
            )
        except BackendError as exc:
            raise ConfigError("config", "secrets.vault.auth", str(exc)) from None
        resolvers["vault"] = resolver
    broker = SecretBroker(resolvers, ttl=settings.ttl_seconds, stale=settings.stale_seconds)
    for key, ref in credentials.items():
        if not broker.supports(ref):
            raise ConfigError(
                "config",
                key,
                f"a {backend_of(ref)} reference needs a secrets.{backend_of(ref)} section",
            )
    return broker


def take_environment(vault: Vault | None, credentials: Mapping[str, CredentialRef]) -> EnvResolver:
    """Take every variable an ``env:`` reference names out of the process environment, log each
    deployment credential whose variable is not set (by name, with the config key that needs
    it), and return the resolver that serves them."""
    needed = [ref.target for ref in environment_refs(vault, credentials.values())]
    for name in needed:
        take_from_environment(name)
    resolver = EnvResolver(needed)
    unset = set(resolver.unset)
    for key, ref in credentials.items():
        if ref.scheme == "env" and ref.target in unset:
            log.warning(
                "credential variable is not set: this deployment cannot be served",
                extra={"sg_variable": ref.target, "sg_key": key},
            )
    return resolver


def environment_refs(
    vault: Vault | None, credentials: Iterable[CredentialRef]
) -> list[CredentialRef]:
    """Every ``env:`` reference in the config: the credentials given, and Vault's login
    credentials (``build_broker`` takes their variables out of the environment)."""
    refs: list[CredentialRef | None] = list(credentials)
    if vault is not None:
        auth = vault.auth
        for name in ("token", "secret_id", "jwt"):
            value = getattr(auth, name)
            refs.append(parse_ref(value) if value is not None else None)
    return [ref for ref in refs if ref is not None and ref.scheme == "env"]


class _Encrypted(Exception):
    pass


def _refuse_passphrase() -> bytes:
    raise _Encrypted


def check_tls_files(tls: VaultTLS) -> None:
    """Load Vault's CA bundle and the client certificate and key once, so that a file that is
    missing, unreadable or not PEM, or a key that needs a passphrase (which OpenSSL would ask for
    on a terminal), stops start-up naming the setting. An error holds the OS's or OpenSSL's
    reason, never the file's content. (The HTTP client loads the files again for each new
    connection, so a certificate renewed in place is picked up.)"""
    files = (
        ("ca_bundle", tls.ca_bundle),
        ("client_cert", tls.client_cert),
        ("client_key", tls.client_key),
    )
    for name, path in files:
        if path is None:
            continue
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise ConfigError(
                "config", f"secrets.vault.tls.{name}", f"cannot be read ({exc.strerror})"
            ) from None
    context = ssl.create_default_context()
    if tls.ca_bundle is not None:
        try:
            context.load_verify_locations(cafile=tls.ca_bundle)
        except ssl.SSLError as exc:
            raise ConfigError(
                "config",
                "secrets.vault.tls.ca_bundle",
                f"holds no PEM certificate that loads ({exc.reason or 'not PEM'})",
            ) from None
    if tls.client_cert is not None:
        try:
            context.load_cert_chain(tls.client_cert, tls.client_key, password=_refuse_passphrase)
        except _Encrypted:
            raise ConfigError(
                "config",
                "secrets.vault.tls.client_key",
                "is encrypted with a passphrase; give the gateway the key unencrypted, "
                "on a tmpfs with mode 0600",
            ) from None
        except ssl.SSLError as exc:
            raise ConfigError(
                "config",
                "secrets.vault.tls.client_key",
                "and client_cert do not load as a matching PEM certificate and key "
                f"({exc.reason or 'not PEM'})",
            ) from None
