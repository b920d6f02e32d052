"""One upstream MCP server, reached with the official ``mcp`` SDK's client: over Streamable
HTTP, or the older HTTP+SSE transport for a server that speaks only that (``transport: sse``),
or, where the operator allowed it (``mcp.allow_stdio``), a local program over stdio.

The gateway holds one MCP session per server, opened on first use and kept open (a tool call is
one request on it, not a new handshake), and opened again after it fails. Every HTTP request on
it goes through ``PinnedTransport`` (the egress guard) and is built by ``BrokerAuth``: the
server's own credential, fetched from the secret broker for that request (just in time; the
broker holds it in memory for its TTL, never on disk), set on that request alone, and only when
the request goes to the server's pinned scheme, host and port. The
caller's credential is never on it: the client's request ends at the gateway, and the upstream
request is made from nothing of it but the tool's name and arguments.

A stdio server is started (by the SDK's ``stdio_client``: no shell, its own session and process
group, killed with it) with the SDK's short list of non-secret variables and the ones its
``env`` names, each fetched from the broker when the process starts; none of the gateway's own
environment (its admin key, Vault token or provider keys). Its standard error goes nowhere: what
a child prints is not the gateway's to log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
import httpx2
import mcp_types as types
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.dispatcher import ProgressFnT

from gateway.config.mcp import McpServer
from gateway.errors import UpstreamUnavailable
from gateway.mcp.direct import DirectCaller
from gateway.providers.egress import GuardedResolver
from gateway.secrets.broker import SecretBroker

log = logging.getLogger("sealgate.mcp")

CONNECT_SECONDS = 10.0  # the longest a first call waits for the server's handshake
SSE_SLACK_BYTES = 64 * 1024  # one SSE event may be this much bigger than the result cap
SSE_IDLE_SECONDS = 300.0  # the older HTTP+SSE transport: its stream's longest silence

Progress = ProgressFnT  # (progress, total, message), awaited for each progress notification
T = TypeVar("T")
Page = TypeVar("Page", types.ListToolsResult, types.ListPromptsResult, types.ListResourcesResult)


class EgressRefused(httpx2.TransportError):
    """A request to anything but the server's pinned origin (it is never sent)."""


def origin(url: str | httpx2.URL) -> tuple[str, str, int]:
    parts = urlsplit(str(url))
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https" else 80)


class BrokerAuth(httpx2.Auth):
    """Sets the server's credential on each request, fetched just in time; refuses a request
    that would leave the server's pinned origin."""

    def __init__(self, server: McpServer, broker: SecretBroker) -> None:
        assert server.url is not None  # an HTTP server (config: a url unless stdio)
        self._origin = origin(server.url)
        self._ref = server.credential_ref
        self._header = server.credential_header
        self._broker = broker

    async def async_auth_flow(
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        if origin(request.url) != self._origin:
            raise EgressRefused("not the MCP server's pinned origin")
        if self._ref is not None:
            value = (await self._broker.get(self._ref)).reveal()
            if self._header == "authorization":
                request.headers["authorization"] = f"Bearer {value}"
            else:
                request.headers[self._header] = value
        yield request


class PinnedTransport(httpx2.AsyncBaseTransport):
    """Connects only to an address the egress guard resolved for the server's pinned host
    (``gateway.providers.egress.GuardedResolver``: no private, loopback or link-local address
    unless the server allows it), so a name that resolves elsewhere between the check and the
    connection cannot steer the request. TLS still verifies the pinned host name (SNI)."""

    def __init__(self, server: McpServer) -> None:
        self._resolver = GuardedResolver(server.host, server.allow_private_network)
        self._inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        _, host, port = origin(request.url)
        found = await self._resolver.resolve(host, port, socket.AF_UNSPEC)
        if not found:
            raise EgressRefused(f"{host} resolves to no address")
        request.extensions = {**request.extensions, "sni_hostname": host}
        request.url = request.url.copy_with(host=found[0]["host"])
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()
        await self._resolver.close()


class Upstream:
    def __init__(self, server: McpServer, broker: SecretBroker) -> None:
        self.server = server
        self.name = server.name
        self._broker = broker
        self._session: ClientSession | None = None
        self._runner: asyncio.Task[None] | None = None
        self._opening: asyncio.Future[ClientSession] | None = None
        self._lock = asyncio.Lock()
        # tools/call on a Streamable HTTP server goes the direct way (direct.py) unless the
        # client asked for progress, which the SDK's session relays
        self._direct = (
            DirectCaller(server, broker) if server.transport == "streamable_http" else None
        )

    async def session(self) -> ClientSession:
        async with self._lock:
            if self._session is not None and self._runner is not None and not self._runner.done():
                return self._session
            loop = asyncio.get_running_loop()
            opening: asyncio.Future[ClientSession] = loop.create_future()
            self._runner = loop.create_task(self._run(opening))
        try:
            async with asyncio.timeout(CONNECT_SECONDS):
                self._session = await asyncio.shield(opening)
        except Exception as exc:  # noqa: BLE001 - any failure to connect is the same to a caller
            self._drop()
            log.warning(
                "MCP server unreachable",
                extra={"sg_server": self.name, "sg_error": type(exc).__name__},
            )
            raise UpstreamUnavailable(f"MCP server {self.name!r} is unavailable") from None
        return self._session

    def _client(
        self,
        headers: dict[str, str] | None = None,
        timeout: httpx2.Timeout | None = None,
        auth: httpx2.Auth | None = None,
    ) -> httpx2.AsyncClient:
        """The HTTP client of the session (the SDK's client factory's shape; what the SDK
        asks for is replaced by the server's own credential, timeouts and pinned transport)."""
        return httpx2.AsyncClient(
            auth=BrokerAuth(self.server, self._broker),
            timeout=httpx2.Timeout(CONNECT_SECONDS, read=self.server.timeout_seconds + 5),
            transport=PinnedTransport(self.server),
        )

    async def _run(self, opening: asyncio.Future[ClientSession]) -> None:
        """Holds the session open (the SDK's transport lives in this one task) until closed."""
        try:
            async with contextlib.AsyncExitStack() as stack:
                url = self.server.url or ""
                if self.server.transport == "stdio":
                    read, write = await stack.enter_async_context(
                        stdio_client(
                            await self._program(),
                            errlog=stack.enter_context(open(os.devnull, "w")),  # noqa: SIM115
                        )
                    )
                elif self.server.transport == "sse":
                    read, write = await stack.enter_async_context(
                        sse_client(
                            url,
                            timeout=CONNECT_SECONDS,
                            sse_read_timeout=SSE_IDLE_SECONDS,
                            httpx_client_factory=self._client,
                        )
                    )
                else:
                    http = await stack.enter_async_context(self._client())
                    read, write = await stack.enter_async_context(
                        streamable_http_client(
                            url,
                            http_client=http,
                            max_sse_event_size=self.server.max_result_bytes + SSE_SLACK_BYTES,
                        )
                    )
                session = await stack.enter_async_context(ClientSession(read, write))
                await session.initialize()
                opening.set_result(session)
                await asyncio.Event().wait()  # until cancelled by close() or a failure
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - reported to whoever waits, or logged
            if not opening.done():
                opening.set_exception(exc)
            else:
                log.warning(
                    "MCP session ended",
                    extra={"sg_server": self.name, "sg_error": type(exc).__name__},
                )
        finally:
            if not opening.done():
                opening.cancel()

    async def _program(self) -> StdioServerParameters:
        """The stdio server's command, with its environment fetched from the broker now."""
        command = self.server.command
        assert command is not None  # config: stdio needs a command
        env = {
            name: (await self._broker.get(ref)).reveal()
            for name, ref in self.server.env_refs.items()
        }
        return StdioServerParameters(
            command=command[0], args=command[1:], env=env, cwd=self.server.cwd or "/"
        )

    def _drop(self) -> None:
        self._session = None
        if self._runner is not None:
            self._runner.cancel()
            self._runner = None

    async def list_tools(self) -> list[types.Tool]:
        session = await self.session()
        pages = [page.tools async for page in self._pages(session.list_tools)]
        return [tool for page in pages for tool in page]

    async def call_tool(
        self, name: str, arguments: dict[str, Any] | None, progress: Progress | None
    ) -> types.CallToolResult:
        if self._direct is not None and progress is None:
            try:
                return await self._direct.call_tool(name, arguments)
            except (aiohttp.ClientError, OSError):
                await self._direct.close()  # the next call opens a new session
                raise UpstreamUnavailable(f"MCP server {self.name!r} is unavailable") from None
        session = await self.session()
        return await self._guarded(
            session.call_tool(
                name,
                arguments,
                read_timeout_seconds=self.server.timeout_seconds,
                progress_callback=progress,
            )
        )

    async def list_prompts(self) -> list[types.Prompt]:
        session = await self.session()
        pages = [page.prompts async for page in self._pages(session.list_prompts)]
        return [prompt for page in pages for prompt in page]

    async def get_prompt(
        self, name: str, arguments: dict[str, str] | None
    ) -> types.GetPromptResult:
        session = await self.session()
        return await self._guarded(session.get_prompt(name, arguments))

    async def list_resources(self) -> list[types.Resource]:
        session = await self.session()
        pages = [page.resources async for page in self._pages(session.list_resources)]
        return [resource for page in pages for resource in page]

    async def read_resource(self, uri: str) -> types.ReadResourceResult:
        session = await self.session()
        return await self._guarded(session.read_resource(uri))

    async def _pages(self, fetch: Callable[..., Awaitable[Page]]) -> AsyncGenerator[Page, None]:
        """Every page of a paginated list (``params=`` with the cursor of the page before)."""
        cursor: str | None = None
        while True:
            params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
            page = await self._guarded(fetch(params=params))
            yield page
            cursor = page.next_cursor
            if not cursor:
                return

    def offers(self, capability: str) -> bool:
        """Whether the open session's server declared ``capability`` (prompts, resources)."""
        declared = self._session.server_capabilities if self._session is not None else None
        return declared is not None and getattr(declared, capability, None) is not None

    async def _guarded(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except (httpx2.TransportError, OSError, RuntimeError):
            self._drop()  # the next call opens a new session
            raise UpstreamUnavailable(f"MCP server {self.name!r} is unavailable") from None

    async def close(self) -> None:
        if self._direct is not None:
            await self._direct.close()
        runner, self._runner = self._runner, None
        self._session = None
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(BaseException):
                await runner
