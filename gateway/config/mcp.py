"""The ``mcp`` section of the config: the upstream MCP servers the gateway aggregates at /mcp,
and the rate limits on tool calls.

    mcp:
      servers:
        - name: tickets                      # tools appear to clients as tickets.<tool>
          url: https://mcp.example.com/mcp   # its host must be on the egress allowlist
                                             # (policies/egress.yaml, provider "mcp")
          transport: streamable_http         # or sse: the older HTTP+SSE transport
          credential: vault:kv/mcp/tickets#token   # the server's own credential (a reference)
          credential_header: authorization  # sent as "Bearer <value>" (any other header: as is)
          timeout_seconds: 30                # one tool call, start to answer
          max_result_bytes: 1048576          # a bigger tool result is refused
      calls_per_minute_per_key: 600          # null: no limit of its own
      calls_per_minute_per_team: 6000

Who may see and call which tool, and which tools an operator has approved, is state, not
config: the admin API keeps it (``/admin/mcp/...``, docs/mcp.md).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.refs import CredentialRef, parse_ref

DEFAULT_TOOL_TIMEOUT = 30.0
DEFAULT_MAX_RESULT_BYTES = 1024 * 1024
SERVER_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,47}$")
HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,64}$")

CallLimit = Annotated[int, Field(ge=1, le=10**9)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class McpServer(Strict):
    name: str
    url: str
    transport: Literal["streamable_http", "sse"] = "streamable_http"
    credential: str | None = None
    credential_header: str = "authorization"
    timeout_seconds: float = Field(DEFAULT_TOOL_TIMEOUT, gt=0, le=3600)
    max_result_bytes: int = Field(DEFAULT_MAX_RESULT_BYTES, ge=1024, le=256 * 1024 * 1024)
    allow_private_network: bool = False

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not SERVER_NAME.match(value):
            raise ValueError(
                "expected a lower-case name of letters, digits, '-' or '_' (at most 48), "
                "starting with a letter: it prefixes the server's tools as <name>.<tool>"
            )
        return value

    @field_validator("url")
    @classmethod
    def _absolute_http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected an absolute http:// or https:// URL")
        if parts.username or parts.password:
            raise ValueError("a credential never belongs in the URL: use 'credential'")
        return value

    @field_validator("credential")
    @classmethod
    def _reference_not_literal(cls, value: str | None) -> str | None:
        if value is not None:
            parse_ref(value)  # raises ValueError with an explanation that never echoes the value
        return value

    @field_validator("credential_header")
    @classmethod
    def _header_name(cls, value: str) -> str:
        if not HEADER_NAME.match(value):
            raise ValueError("expected an HTTP header name (letters, digits and '-')")
        return value.lower()

    @property
    def credential_ref(self) -> CredentialRef | None:
        return parse_ref(self.credential) if self.credential else None

    @property
    def host(self) -> str:
        return (urlsplit(self.url).hostname or "").lower()


class Mcp(Strict):
    servers: list[McpServer] = []
    calls_per_minute_per_key: CallLimit | None = None
    calls_per_minute_per_team: CallLimit | None = None

    @model_validator(mode="after")
    def _unique_names(self) -> Mcp:
        seen: set[str] = set()
        for server in self.servers:
            if server.name in seen:
                raise ValueError(f"two MCP servers are named {server.name!r}")
            seen.add(server.name)
        return self
