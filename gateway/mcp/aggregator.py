"""The aggregator: the tools of every upstream MCP server, namespaced ``<server>.<tool>``, as one
caller may see and call them.

A caller sees a tool, and may call it, only when three things hold: an operator approved it and
its definition still hashes to the approved digest (``pins``), the caller's key and team grant
it (``grants``), and the server is in the config. Anything else answers exactly as a tool that
does not exist, so a caller learns nothing of what it may not use. A call is counted against the
per-key and per-team limits (the governance counters, so Redis for many replicas), bounded by
the server's timeout and result size, written to the audit log (who, which tool, when, the
outcome and the SHA-256 of the arguments, never the arguments) and counted in the metrics by
server, tool and outcome.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, unquote

import anyio.to_thread

from gateway.config.mcp import Mcp
from gateway.errors import (
    GatewayError,
    LimitsUnavailable,
    NotFound,
    RateLimited,
    ToolNotFound,
    UpstreamTimeout,
    UpstreamTooLarge,
    UpstreamUnavailable,
)
from gateway.governance.audit import Actor, AuditLog, Entry
from gateway.governance.counters import Charge, Counters, CountersUnavailable
from gateway.mcp import grants, pins
from gateway.mcp.state import McpStore
from gateway.metrics import METRICS
from gateway.secrets.broker import SecretBroker
from gateway.store.keys import KeyRecord

if TYPE_CHECKING:
    # issue 23: the MCP SDK (tens of MB resident) is imported only when mcp.servers has a
    # server; its types here are annotations only.
    import mcp_types as types

    from gateway.mcp.upstream import Progress, Upstream

log = logging.getLogger("sealgate.mcp")

SEPARATOR = "."
MINUTE_TTL = 120
TOOLS_FRESH_SECONDS = 30.0  # a call re-reads the server's tool list when it is older than this
AUDIT_BATCH_SECONDS = 0.05  # audit rows of calls are written together, this often

CALLS = METRICS.counter("sealgate_mcp_calls_total", "MCP tool calls by server, tool and outcome")
CALL_SECONDS = METRICS.counter(
    "sealgate_mcp_call_seconds_total", "time spent in MCP tool calls by server and tool"
)


@dataclass(frozen=True, slots=True)
class Offered:
    """One tool of one server as the upstream describes it now, and the verdict on it."""

    server: str
    tool: types.Tool
    digest: str
    verdict: pins.Verdict

    @property
    def public_name(self) -> str:
        return f"{self.server}{SEPARATOR}{self.tool.name}"

    def public(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "tool": self.tool.name,
            "name": self.public_name,
            "digest": self.digest,
            "status": self.verdict.status,
            "reason": self.verdict.reason,
            "description": self.tool.description,
            "input_schema": self.tool.input_schema,
        }


URI_SCHEME = "sealgate"


def public_uri(server: str, uri: str) -> str:
    """An upstream resource's URI as the gateway's clients see it: sealgate://<server>/<uri>."""
    return f"{URI_SCHEME}://{server}/{quote(str(uri), safe='')}"


def upstream_uri(uri: str) -> tuple[str, str]:
    """(server, the upstream's URI) of a public URI; ("", "") when it is not one."""
    head = f"{URI_SCHEME}://"
    if not uri.startswith(head):
        return "", ""
    server, _, rest = uri[len(head) :].partition("/")
    return server, unquote(rest)


def arguments_digest(arguments: dict[str, Any] | None) -> str:
    text = json.dumps(arguments or {}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class CallGuard(Protocol):
    """What checks a tool call's arguments before the upstream sees them and its result before
    the client does: each returns what may go on (masked), or raises a GatewayError (a block)."""

    async def arguments(
        self, record: KeyRecord, name: str, arguments: dict[str, Any] | None
    ) -> dict[str, Any] | None: ...

    async def result(
        self, record: KeyRecord, name: str, result: types.CallToolResult
    ) -> types.CallToolResult: ...


class Aggregator:
    def __init__(
        self,
        settings: Mcp,
        broker: SecretBroker,
        store: McpStore,
        counters: Counters,
        audit: AuditLog,
    ) -> None:
        self.settings = settings
        self.upstreams: dict[str, Upstream] = {}
        if settings.servers:
            from gateway.mcp.upstream import Upstream  # the SDK's client: only with servers

            self.upstreams = {s.name: Upstream(s, broker) for s in settings.servers}
        self.store = store
        self._counters = counters
        self._audit = audit
        self._tools: dict[str, tuple[float, dict[str, types.Tool]]] = {}
        # (server, tool name) -> the tool as last listed and its digest
        self._digests: dict[tuple[str, str], tuple[types.Tool, str]] = {}
        self._audit_queue: list[Entry] = []
        self._writer: asyncio.Task[None] | None = None
        # the guardrails over a call's arguments and its result (gateway.api.mcp_guard sets it)
        self.guard: CallGuard | None = None

    # -- what a server offers ---------------------------------------------------------------
    async def offered(self, server: str) -> list[Offered]:
        """The server's tools as it describes them now (asked now), each with its verdict."""
        upstream = self.upstreams.get(server)
        if upstream is None:
            raise NotFound(f"no MCP server named {server!r}", code="mcp_server_not_found")
        listed = await upstream.list_tools()
        self._tools[server] = (time.monotonic(), {t.name: t for t in listed})
        await self._fresh_state()
        return [self._judge(server, tool) for tool in listed]

    def _judge(self, server: str, tool: types.Tool) -> Offered:
        # a listed tool is never changed in place: its digest is worked out once per listing
        known = self._digests.get((server, tool.name))
        if known is not None and known[0] is tool:
            current = known[1]
        else:
            current = pins.digest(tool.name, tool.description, tool.input_schema)
            self._digests[(server, tool.name)] = (tool, current)
        approval = self.store.snapshot.approvals.get((server, tool.name))
        return Offered(server, tool, current, pins.judge(current, approval))

    async def _fresh_state(self) -> None:
        if self.store.stale():
            await anyio.to_thread.run_sync(self.store.load)

    # -- for one caller ---------------------------------------------------------------------
    def _may(self, record: KeyRecord, server: str, tool: str) -> bool:
        snapshot = self.store.snapshot
        key = snapshot.grants_of(grants.key_principal(record.id))
        team = (
            snapshot.grants_of(grants.team_principal(record.team_id))
            if record.team_id is not None
            else None
        )
        return grants.allowed(key, team, server, tool)

    async def tools_for(self, record: KeyRecord) -> list[types.Tool]:
        """The tools ``record`` may call, under their public names. A server that does not
        answer contributes nothing (and is logged), the rest are listed."""
        await self._fresh_state()
        visible = [s for s in self.upstreams if self._may_any(record, s)]
        listed = await asyncio.gather(*(self.offered(s) for s in visible), return_exceptions=True)
        tools: list[types.Tool] = []
        for server, found in zip(visible, listed, strict=True):
            if isinstance(found, BaseException):
                if not isinstance(found, GatewayError):
                    raise found
                continue
            for offered in found:
                if offered.verdict.usable and self._may(record, server, offered.tool.name):
                    tools.append(offered.tool.model_copy(update={"name": offered.public_name}))
        return tools

    def _may_any(self, record: KeyRecord, server: str) -> bool:
        key = self.store.snapshot.grants_of(grants.key_principal(record.id))
        return any(p.split(SEPARATOR, 1)[0] == server for p in key)

    async def call(
        self,
        record: KeyRecord,
        name: str,
        arguments: dict[str, Any] | None,
        progress: Progress | None = None,
    ) -> types.CallToolResult:
        started = time.monotonic()
        server, _, tool = name.partition(SEPARATOR)
        labels = (("server", "-"), ("tool", "-"))
        outcome = "error"
        try:
            await self._fresh_state()
            await self._callable(record, server, tool)
            labels = (("server", server), ("tool", tool))
            await self._admit(record)
            guard = self.guard
            if guard is not None:
                arguments = await guard.arguments(record, name, arguments)
            result = await self._forward(server, tool, arguments, progress)
            if guard is not None:
                result = await guard.result(record, name, result)
            outcome = "tool_error" if result.is_error else "ok"
            return result
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except GatewayError as exc:
            outcome = exc.code
            raise
        finally:
            seconds = time.monotonic() - started
            CALLS[(*labels, ("outcome", outcome))] += 1
            if labels[0][1] != "-":
                CALL_SECONDS[labels] += seconds
            self._record(record, name if labels[0][1] != "-" else None, arguments, outcome)

    async def _callable(self, record: KeyRecord, server: str, tool: str) -> Offered:
        unknown = ToolNotFound(f"unknown tool {server}{SEPARATOR}{tool!s:.200}")
        if server not in self.upstreams or not tool or not self._may(record, server, tool):
            raise unknown
        when, known = self._tools.get(server, (float("-inf"), {}))
        if tool not in known or time.monotonic() - when > TOOLS_FRESH_SECONDS:
            await self.offered(server)
            known = self._tools[server][1]
        if tool not in known:
            raise unknown
        offered = self._judge(server, known[tool])
        if not offered.verdict.usable:
            raise unknown
        return offered

    async def _admit(self, record: KeyRecord) -> None:
        minute = int(time.time() // 60)
        charges: list[Charge] = []
        scopes: list[str] = []
        if self.settings.calls_per_minute_per_key is not None:
            limit = self.settings.calls_per_minute_per_key
            charges.append(Charge(f"mcp:key:{record.id}:{minute}", 1, limit, MINUTE_TTL))
            scopes.append("key")
        if self.settings.calls_per_minute_per_team is not None and record.team_id is not None:
            limit = self.settings.calls_per_minute_per_team
            charges.append(Charge(f"mcp:team:{record.team_id}:{minute}", 1, limit, MINUTE_TTL))
            scopes.append("team")
        if not charges:
            return
        try:
            outcome = await self._counters.reserve(charges)
        except CountersUnavailable:
            raise LimitsUnavailable(
                "tool-call limits cannot be checked right now; try again shortly"
            ) from None
        if outcome.refused is not None:
            reset = str(60 - int(time.time()) % 60)
            raise RateLimited(
                f"tool calls per minute of this {scopes[outcome.refused]} exhausted",
                code="tool_calls_exceeded",
                headers={"retry-after": reset},
            )

    async def _forward(
        self, server: str, tool: str, arguments: dict[str, Any] | None, progress: Progress | None
    ) -> types.CallToolResult:
        upstream = self.upstreams[server]
        limit = upstream.server.max_result_bytes
        try:
            async with asyncio.timeout(upstream.server.timeout_seconds):
                result = await upstream.call_tool(tool, arguments, progress)
        except TimeoutError:
            raise UpstreamTimeout(
                f"tool {server}{SEPARATOR}{tool} did not answer within "
                f"{upstream.server.timeout_seconds:g} s"
            ) from None
        except GatewayError:
            raise
        except Exception as exc:  # noqa: BLE001 - a protocol error from the upstream
            message = getattr(exc, "message", None) or type(exc).__name__
            raise UpstreamUnavailable(
                f"tool {server}{SEPARATOR}{tool} failed upstream: {str(message)[:300]}",
                code="mcp_upstream_error",
            ) from None
        if len(result.model_dump_json(by_alias=True, exclude_none=True)) > limit:
            raise UpstreamTooLarge(
                f"the result of tool {server}{SEPARATOR}{tool} is larger than {limit} bytes"
            )
        return result

    def _record(
        self,
        record: KeyRecord,
        tool: str | None,
        arguments: dict[str, Any] | None,
        outcome: str,
        action: str = "mcp.call",
    ) -> None:
        """The audit row: queued here, written off the request's path in batches."""
        actor = Actor(f"key:{record.id}", "key", record.team_id)
        detail = {
            "outcome": outcome,
            "arguments_sha256": arguments_digest(arguments),
            "team_id": record.team_id,
        }
        target = f"mcp:{tool}" if tool is not None else "mcp:unknown"
        self._audit_queue.append((datetime.now(UTC), actor, action, target, detail))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_audit())

    async def _write_audit(self) -> None:
        while self._audit_queue:
            await asyncio.sleep(AUDIT_BATCH_SECONDS)
            batch, self._audit_queue = self._audit_queue, []
            try:
                await anyio.to_thread.run_sync(self._audit.record_many, batch)
            except Exception as exc:  # noqa: BLE001 - logged; the calls have been answered
                log.error(
                    "MCP calls not audited",
                    extra={"sg_error": type(exc).__name__, "sg_rows": len(batch)},
                )

    async def drain(self) -> None:
        """Wait for the audit rows still queued to be written."""
        if self._writer is not None:
            await self._writer

    # -- prompts and resources ---------------------------------------------------------------
    # Offered to a caller only for servers its key (and team) grant whole (``<server>.*``):
    # they are not pinned one by one as tools are (docs/mcp.md).
    def _whole(self, record: KeyRecord) -> list[str]:
        return [s for s in self.upstreams if self._may(record, s, "*")]

    async def _gathered(self, servers: list[str], what: str) -> list[tuple[str, list[Any]]]:
        async def one(server: str) -> list[Any]:
            upstream = self.upstreams[server]
            await upstream.session()
            if not upstream.offers(what):
                return []
            listed: list[Any] = await getattr(upstream, f"list_{what}")()
            return listed

        found = await asyncio.gather(*(one(s) for s in servers), return_exceptions=True)
        out: list[tuple[str, list[Any]]] = []
        for server, items in zip(servers, found, strict=True):
            if isinstance(items, BaseException):
                if not isinstance(items, GatewayError):
                    raise items
                continue
            out.append((server, items))
        return out

    async def prompts_for(self, record: KeyRecord) -> list[types.Prompt]:
        await self._fresh_state()
        return [
            p.model_copy(update={"name": f"{server}{SEPARATOR}{p.name}"})
            for server, prompts in await self._gathered(self._whole(record), "prompts")
            for p in prompts
        ]

    async def get_prompt(
        self, record: KeyRecord, name: str, arguments: dict[str, str] | None
    ) -> types.GetPromptResult:
        await self._fresh_state()
        server, _, prompt = name.partition(SEPARATOR)
        if server not in self.upstreams or not prompt or not self._may(record, server, "*"):
            raise ToolNotFound(f"unknown prompt {name!s:.200}", code="prompt_not_found")
        outcome = "error"
        try:
            result = await self.upstreams[server].get_prompt(prompt, arguments)
            outcome = "ok"
            return result
        finally:
            self._record(record, name, arguments, outcome, "mcp.prompt")

    async def resources_for(self, record: KeyRecord) -> list[types.Resource]:
        await self._fresh_state()
        return [
            r.model_copy(update={"uri": public_uri(server, r.uri)})
            for server, resources in await self._gathered(self._whole(record), "resources")
            for r in resources
        ]

    async def read_resource(self, record: KeyRecord, uri: str) -> types.ReadResourceResult:
        await self._fresh_state()
        server, original = upstream_uri(uri)
        if server not in self.upstreams or not self._may(record, server, "*"):
            raise ToolNotFound(f"unknown resource {uri!s:.200}", code="resource_not_found")
        outcome = "error"
        try:
            result = await self.upstreams[server].read_resource(original)
            outcome = "ok"
            return result.model_copy(
                update={
                    "contents": [
                        c.model_copy(update={"uri": public_uri(server, c.uri)})
                        for c in result.contents
                    ]
                }
            )
        finally:
            self._record(record, f"{server}{SEPARATOR}{original[:100]}", None, outcome, "mcp.read")

    async def close(self) -> None:
        await self.drain()
        for upstream in self.upstreams.values():
            await upstream.close()
