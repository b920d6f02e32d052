"""Start-up: load config, harden the process, open state, then serve with uvicorn."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import uvicorn

from gateway import integrity, logs
from gateway.api.app import Services, build_app
from gateway.auth import AdminCredential, Authenticator
from gateway.config import GatewayConfig, load_config
from gateway.errors import ConfigError
from gateway.governance.setup import build_governance
from gateway.hardening import harden_process
from gateway.providers import egress
from gateway.providers.pool import UpstreamPool
from gateway.routing.router import Router
from gateway.secrets.setup import build_broker
from gateway.store.db import default_url, ensure_data_dir, make_engine, migrate
from gateway.store.keys import KeyStore

log = logging.getLogger("sealgate")


def read_admin_key(environ: dict[str, str] | os._Environ[str] = os.environ) -> AdminCredential:
    """The admin credential from SEALGATE_ADMIN_KEY or the file SEALGATE_ADMIN_KEY_FILE. The
    variable is removed from the environment once read, so no child process inherits it."""
    value = environ.pop("SEALGATE_ADMIN_KEY", None)
    path = environ.get("SEALGATE_ADMIN_KEY_FILE")
    if value is None and path:
        try:
            value = Path(path).read_text("utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                "SEALGATE_ADMIN_KEY_FILE", path, f"cannot be read: {exc.strerror}"
            ) from None
    if not value:
        raise ConfigError(
            "environment",
            "SEALGATE_ADMIN_KEY",
            "not set: set SEALGATE_ADMIN_KEY or SEALGATE_ADMIN_KEY_FILE to the admin credential",
        )
    try:
        return AdminCredential(value)
    except ValueError as exc:
        raise ConfigError("environment", "SEALGATE_ADMIN_KEY", str(exc)) from None


def build_services(config: GatewayConfig, data_dir: Path, admin: AdminCredential) -> Services:
    ensure_data_dir(data_dir)
    url = config.storage.url or default_url(data_dir)
    engine = make_engine(url)
    migrate(engine)
    keys = KeyStore(engine)
    broker = build_broker(config)
    pool = UpstreamPool()
    router = Router(config, broker, pool)
    return Services(
        config=config,
        engine=engine,
        keys=keys,
        auth=Authenticator(keys, config.server.auth_cache_seconds),
        admin_credential=admin,
        broker=broker,
        pool=pool,
        router=router,
        governance=build_governance(config, engine, data_dir),
    )


def serve(config_path: str | None, host: str, port: int, data_dir: Path) -> int:
    config = load_config(config_path)
    logs.configure(config.logging.level)
    admin = read_admin_key()
    try:
        signed_policies = integrity.check_policy_bundle(config)  # before any policy is read
        egress.enforce(config)
        checked = integrity.check(config)
    except integrity.StartupRefused as exc:
        print(f"sealgate: {exc}", file=sys.stderr, flush=True)
        return 1
    hardening = harden_process()
    services = build_services(config, data_dir, admin)
    services.readiness["process"] = {"ok": True, **hardening}
    services.readiness["integrity"] = checked.state
    services.readiness["policies"] = signed_policies
    services.integrity = checked
    app = build_app(services)
    log.info(
        "sealgate starting",
        extra={
            "sg_address": f"http://{host}:{port}",
            "sg_models": config.models(),
            "sg_config": config_path or "<bundled>",
        },
    )
    print(f"Sealgate serving on http://{host}:{port}/v1", file=sys.stderr, flush=True)
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        # X-Forwarded-* are not trusted: a client could otherwise claim any address.
        proxy_headers=False,
        log_config=None,
        server_header=False,
        date_header=False,
        timeout_graceful_shutdown=10,
    )
    return 0
