"""The composition root: the one place that reads the whole configuration.

Start-up order: load and validate the config (with the provider registry), harden the process,
check the policy bundle, egress and integrity, then build each subsystem from its own config
section (store, secrets broker, connection pool, router, governance), assemble the HTTP surface
(``gateway.api``) and serve it with uvicorn.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine
from starlette.types import ASGIApp

from gateway import config as config_files
from gateway import integrity, logs, runtime, tracing, workers
from gateway.api.admin.context import AdminContext
from gateway.api.app import Gateway, build_app
from gateway.api.connections import ConnectionLimits, protocol_for
from gateway.api.conversations import Conversations, build_conversations
from gateway.api.health import Readiness
from gateway.api.inference import Inference
from gateway.auth import AdminCredential, Authenticator
from gateway.cache.responses import build_cache
from gateway.config import GatewayConfig, Sink, guardrails_section
from gateway.config import Tracing as TracingSettings
from gateway.errors import ConfigError
from gateway.governance.audit import AuditLog
from gateway.governance.core import Governance
from gateway.governance.oidc import OidcClient
from gateway.governance.s3 import S3Sink
from gateway.governance.sessions import Sessions
from gateway.governance.setup import build_governance, check_prices
from gateway.governance.sink_queue import SinkQueue
from gateway.governance.sinks import AlertEvents, QueueSink, Sinks
from gateway.governance.webhook import WebhookSink
from gateway.guardrails import webhook
from gateway.guardrails.pipeline import Guardrails
from gateway.hardening import harden_process
from gateway.mcp.aggregator import Aggregator
from gateway.mcp.state import McpStore
from gateway.providers import egress
from gateway.providers.pool import UpstreamPool
from gateway.providers.registry import PROVIDERS
from gateway.refs import parse_ref
from gateway.reload import Reloader
from gateway.routing.breaker import build_breakers
from gateway.routing.router import Router, build_router
from gateway.secrets.broker import SecretBroker
from gateway.secrets.setup import build_broker
from gateway.store.db import (
    DataDirInUse,
    claim_data_dir,
    default_url,
    ensure_data_dir,
    make_engine,
    migrate,
)
from gateway.store.keys import KeyStore
from verify.watch import Watch

if TYPE_CHECKING:
    from gateway.api.mcp import McpEndpoint  # the MCP SDK: imported only with mcp.servers

log = logging.getLogger("sealgate")


def load_config(path: str | os.PathLike[str] | None) -> GatewayConfig:
    """The config file (or the bundled example), validated with every provider's rules."""
    return config_files.load_config(path, PROVIDERS)


def parse_config(text: str, source: str) -> GatewayConfig:
    return config_files.parse_config(text, source, PROVIDERS)


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


@dataclass
class Services:
    """Everything a serving gateway holds, built from the config by ``build_services``."""

    config: GatewayConfig
    engine: Engine
    keys: KeyStore
    auth: Authenticator
    admin_credential: AdminCredential
    broker: SecretBroker
    pool: UpstreamPool
    router: Router
    governance: Governance
    readiness: Readiness
    inference: Inference
    mcp: McpEndpoint | None  # None when the config has no mcp.servers (/mcp answers 404)
    data_dir_lock: IO[str]
    sinks: Sinks
    tools: Aggregator  # the MCP gateway's aggregator (no server: the admin API lists none)
    conversations: Conversations  # previous_response_id's state (memory, or Redis)
    integrity: integrity.Integrity | None = None
    reloader: Reloader | None = None
    oidc: OidcClient | None = None  # sign-in and JWT bearers, when config ui.oidc

    def app(self) -> Gateway:
        """The ASGI application over these services, with their start and stop hooks."""
        tasks: list[asyncio.Task[Any]] = []

        async def start() -> None:
            await self.governance.start()
            await self.router.breakers.start()
            if self.router.probes is not None:
                self.router.probes.start()
            if self.mcp is not None:
                await self.mcp.start()
            await self.sinks.start()
            if self.integrity is not None:
                tasks.append(asyncio.create_task(self.integrity.watch()))
            if self.reloader is not None:
                loop = asyncio.get_running_loop()
                loop.add_signal_handler(signal.SIGHUP, self.reloader.on_hangup)
            runtime.settle()  # issue 23: no full GC of the start-up heap while serving

        async def stop() -> None:
            for task in tasks:
                task.cancel()
            if self.mcp is not None:
                await self.mcp.stop()  # and the aggregator with it
            else:
                await self.tools.close()
            await self.sinks.close()
            await self.governance.close()
            await self.router.breakers.close()
            if self.router.probes is not None:
                await self.router.probes.stop()
            if self.inference.cache is not None:
                await self.inference.cache.close()
            await self.conversations.close()
            await self.pool.close()
            if self.inference.guardrails is not None:
                await self.inference.guardrails.close()
            await self.inference.drain()
            if self.reloader is not None:
                await self.reloader.close()
            await self.broker.close()
            self.engine.dispose()

        admin = AdminContext(
            self.admin_credential,
            self.engine,
            self.keys,
            self.auth,
            self.governance,
            lambda: self.router.models(),
            self.tools,
            oidc=self.oidc,
        )
        gateway = build_app(
            self.inference,
            self.auth,
            admin,
            self.readiness,
            [start],
            [stop],
            access_log=self.config.logging.access_log,
            mcp=self.mcp,
            dashboard=self.dashboard(admin),
            conversations=self.conversations,
        )
        gateway.access.events = self.sinks.events  # observability (issue 17): access events
        return gateway

    def dashboard(self, admin: AdminContext) -> Callable[[FastAPI], ASGIApp] | None:
        """The admin dashboard over the admin routes, when config ui.enabled (gateway/api/ui/)."""
        settings = self.config.ui
        if not settings.enabled:
            return None
        sessions = Sessions(
            self.engine, settings.session_idle_seconds, settings.session_max_seconds
        )
        from gateway.api.ui.app import Dashboard  # issue 23: jinja2 only with the dashboard on

        return lambda app: Dashboard(settings, app, admin, sessions, lambda: self.integrity).app


def build_services(
    config: GatewayConfig,
    data_dir: Path,
    admin: AdminCredential,
    conversation_key: bytes | None = None,
) -> Services:
    ensure_data_dir(data_dir)
    try:
        held = claim_data_dir(data_dir)
    except DataDirInUse as exc:
        raise ConfigError("--data-dir", str(data_dir), str(exc)) from None
    url = config.storage.url or default_url(data_dir)
    engine = make_engine(url, config.storage.timeout_seconds)
    migrate(engine)
    keys = KeyStore(engine)
    broker = build_broker(config.secrets, config.credentials())
    pool = UpstreamPool()
    alerts = AlertEvents()  # budget alerts, to the log and to the sinks once they are built
    governance = build_governance(
        config.governance, config.deployments, engine, data_dir, alert_sink=alerts
    )
    shared = config.governance.redis if config.governance.counters == "redis" else None
    breakers = build_breakers(config.router.breaker, config.router.cooldown_seconds, shared)
    router = build_router(
        config.router,
        config.deployments,
        pool,
        broker,
        config.governance,
        governance.cost,
        breakers,
    )

    async def secrets() -> dict[str, Any]:
        return {"secrets": await broker.health()}

    auth = Authenticator(keys, config.server.auth_cache_seconds)
    cache = build_cache(config.cache, config.governance.redis, broker)
    guardrails = Guardrails(guardrails_section(config, integrity.policies_dir(config.verify)))
    inference = Inference(
        router, governance, auth, config.server.max_body_bytes, cache, guardrails, AuditLog(engine)
    )

    async def credentials() -> dict[str, Any]:
        # The router a reload swapped in, not the one this closure was made with.
        return {"credentials": await inference.router.credentials_health()}

    async def deployments() -> dict[str, Any]:
        return {"deployments": inference.router.health()}

    queue = SinkQueue(engine)
    for name in queue.register(sink.name for sink in config.sinks):
        log.warning(
            "sink no longer configured: its undelivered events dropped", extra={"sg_sink": name}
        )
    delivering: list[QueueSink] = [sink_of(sink, queue, broker) for sink in config.sinks]
    sinks = Sinks(delivering, queue, data_dir, config.storage.timeout_seconds)
    alerts.sinks = sinks
    readiness = Readiness(
        engine,
        admin,
        [secrets, credentials, deployments, governance.health, sinks.health],
        tenancy=governance.tenancy,
    )
    tools = Aggregator(config.mcp, broker, McpStore(engine), governance.counters, AuditLog(engine))
    endpoint = None
    if config.mcp.servers:  # issue 23: the MCP SDK only for a gateway that serves MCP
        from gateway.api.mcp import McpEndpoint
        from gateway.api.mcp_guard import McpGuardrails

        tools.guard = McpGuardrails(inference)  # guardrails over tool arguments and results
        endpoint = McpEndpoint(tools, auth)
    return Services(
        config=config,
        engine=engine,
        keys=keys,
        auth=auth,
        admin_credential=admin,
        broker=broker,
        pool=pool,
        router=router,
        governance=governance,
        readiness=readiness,
        inference=inference,
        mcp=endpoint,
        data_dir_lock=held,
        sinks=sinks,
        tools=tools,
        conversations=build_conversations(
            config.conversations, config.governance.redis, broker, conversation_key
        ),
        oidc=OidcClient(config.ui.oidc, governance.tenancy) if config.ui.oidc else None,
    )


def sink_of(settings: Sink, queue: SinkQueue, broker: SecretBroker) -> QueueSink:
    if settings.type == "webhook":
        return WebhookSink(settings, queue, broker)
    if settings.type == "s3":
        return S3Sink(settings, queue, broker)
    from gateway.governance.otlp_logs import OtlpLogsSink  # opentelemetry-proto: only then

    return OtlpLogsSink(settings, queue, broker)


def serve(
    config_path: str | None, host: str, port: int, data_dir: Path, worker_count: int = 1
) -> int:
    config = load_config(config_path)
    check_prices(config.governance, config.deployments)  # cost control fails closed
    logs.configure(config.logging.level, access_log=config.logging.access_log)
    admin = read_admin_key()
    try:
        signed_policies = integrity.check_policy_bundle(config.verify)  # before any policy is read
        egress.enforce(config.deployments, integrity.policies_dir(config.verify))
        policies = integrity.policies_dir(config.verify)
        webhook.check_egress(guardrails_section(config, policies), policies)
        egress.enforce_mcp(config.mcp.servers, policies)
        egress.enforce_sinks(config.sinks, policies)  # observability (issue 17)
        egress.enforce_tracing(config.tracing, policies)
        checked = integrity.check(config.verify)
    except integrity.StartupRefused as exc:
        print(f"sealgate: {exc}", file=sys.stderr, flush=True)
        return 1
    # --workers N (gateway/workers.py): checked, then forked before any thread or loop exists
    workers.check_shared(config, worker_count, config_path or "<bundled>")
    # Made before the fork, so the workers read each other's conversation state in Redis when
    # conversations.encryption_key is not set (replicas need the key set: docs/api.md).
    conversation_key = os.urandom(32) if worker_count > 1 else None
    worker = workers.fork(worker_count, host, port) if worker_count > 1 else workers.Worker()
    data_dir = worker.data_dir(data_dir)
    if worker.count > 1 and checked.watcher is not None:
        checked.watcher = Watch(checked.watcher.tree)  # inotify of its own
    hardening = harden_process()
    if config.tracing.enabled:
        start_tracing(config.tracing, config_path or "<bundled>")
    services = build_services(config, data_dir, admin, conversation_key)
    services.readiness.facts["process"] = {"ok": True, **hardening, **worker.facts()}
    services.readiness.facts["integrity"] = checked.state
    services.readiness.facts["policies"] = signed_policies
    services.integrity = checked
    services.reloader = Reloader(services, config_path, load_config)
    app = services.app()
    log.info(
        "sealgate starting",
        extra={
            "sg_address": f"http://{host}:{port}",
            "sg_models": config.models(),
            "sg_config": config_path or "<bundled>",
        },
    )
    server = AnnouncingServer(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            loop="uvloop",
            # httptools, with the limits on what one connection may hold (server.max_header_bytes,
            # max_headers, the header, body and idle timeouts, max_connections)
            http=protocol_for(ConnectionLimits.of(config.server)),
            access_log=False,
            # X-Forwarded-* are not trusted: a client could otherwise claim any address.
            proxy_headers=False,
            log_config=None,
            server_header=False,
            date_header=False,
            timeout_graceful_shutdown=10,
        )
    )
    try:
        server.run(sockets=worker.sockets)
    except SystemExit:
        if server.started:
            raise
        # uvicorn logged why (the address is taken, or not this host's); say it plainly.
        print(f"sealgate: cannot listen on {host}:{port}", file=sys.stderr, flush=True)
        return 2
    finally:
        tracing.stop()  # the spans still queued go out
    return 0


def start_tracing(settings: TracingSettings, source: str) -> None:
    """Start exporting spans, with the exporter's headers read from their references now (and
    held by the log redactor, like every secret the process holds)."""
    headers: dict[str, str] = {}
    for name, text in settings.headers.items():
        ref = parse_ref(text)
        if ref.scheme == "env":
            value = os.environ.pop(ref.target, "")
        else:
            try:
                value = Path(ref.target).read_text().strip()
            except OSError as exc:
                raise ConfigError(
                    source, f"tracing.headers.{name}", f"{ref} cannot be read ({exc.strerror})"
                ) from None
        if not value:
            raise ConfigError(source, f"tracing.headers.{name}", f"{ref} is empty or not set")
        logs.REDACTOR.add(value)
        headers[name] = value
    tracing.start(
        settings.endpoint,
        headers,
        settings.sample_ratio,
        settings.propagate_upstream,
        settings.service_name,
        settings.timeout_seconds,
        functools.partial(egress.checked_address, allow_private=settings.allow_private_network),
    )


class AnnouncingServer(uvicorn.Server):
    """uvicorn's server, saying "serving" only once its socket is bound and listening."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            config = self.config
            address = f"http://{config.host}:{config.port}/v1"
            print(f"Sealgate serving on {address}", file=sys.stderr, flush=True)
