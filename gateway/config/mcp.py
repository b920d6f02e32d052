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
        - name: files                        # a local server over stdio: the weaker option,
          transport: stdio                   # refused unless allow_stdio is true
          command: [/usr/local/bin/mcp-files, --root, /srv/shared]   # argv, no shell
          env: {FILES_TOKEN: "vault:kv/mcp/files#token"}   # each a reference, fetched at start
          cwd: /srv/shared                   # default: /
      allow_stdio: false                     # stdio servers run on this host, unsandboxed
      calls_per_minute_per_key: 600          # null: no limit of its own
      calls_per_minute_per_team: 6000

A stdio server is started as a child process with none of the gateway's environment: only the
MCP SDK's short list of non-secret variables (HOME, LOGNAME, PATH, SHELL, TERM, USER) and the
variables its ``env`` names, each a credential reference fetched just in time. It is still a
program running on the gateway's host with the gateway's user and file access, outside the
egress guard: docs/mcp.md says what that does and does not protect.

Who may see and call which tool, and which tools an operator has approved, is state, not
config: the admin API keeps it (``/admin/mcp/...``, docs/mcp.md).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.config import fields
from gateway.refs import CredentialRef, parse_ref

DEFAULT_TOOL_TIMEOUT = 30.0
DEFAULT_MAX_RESULT_BYTES = 1024 * 1024
SERVER_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,47}$")
HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,64}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")

CallLimit = Annotated[int, Field(ge=1, le=10**9)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class McpServer(Strict):
    name: str
    url: str | None = None
    transport: Literal["streamable_http", "sse", "stdio"] = "streamable_http"
    command: list[str] | None = None  # stdio: the program and its arguments
    env: dict[str, str] = {}  # stdio: variable name -> credential reference
    cwd: str | None = None  # stdio: its working directory
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
    def _absolute_http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        example = "https://tools.example.com/mcp"
        return fields.http_url(value, example, "use 'credential' with a reference")

    _credential = field_validator("credential")(fields.reference)

    @field_validator("credential_header")
    @classmethod
    def _header_name(cls, value: str) -> str:
        if not HEADER_NAME.match(value):
            raise ValueError("expected an HTTP header name (letters, digits and '-')")
        return value.lower()

    @field_validator("command")
    @classmethod
    def _absolute_program(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (not value or not value[0].startswith("/")):
            raise ValueError(
                "expected the program's absolute path first, then its arguments (no shell, "
                "no PATH lookup)"
            )
        return value

    @field_validator("env")
    @classmethod
    def _references(cls, value: dict[str, str]) -> dict[str, str]:
        for name, ref in value.items():
            if not ENV_NAME.match(name):
                raise ValueError(f"{name!r} is not an environment variable name")
            parse_ref(ref)  # each value is a reference; never echoes it
        return value

    @field_validator("cwd")
    @classmethod
    def _absolute_directory(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("expected an absolute path")
        return value

    @model_validator(mode="after")
    def _transport_needs(self) -> McpServer:
        if self.transport == "stdio":
            if self.command is None:
                raise ValueError("transport: stdio needs 'command' (the program and arguments)")
            if self.url is not None or self.credential is not None:
                raise ValueError(
                    "a stdio server has no 'url' or 'credential': give it credentials by "
                    "reference in 'env'"
                )
        else:
            if self.url is None:
                raise ValueError(f"transport: {self.transport} needs 'url'")
            if self.command is not None or self.env or self.cwd is not None:
                raise ValueError("'command', 'env' and 'cwd' are for transport: stdio only")
        return self

    @property
    def credential_ref(self) -> CredentialRef | None:
        return parse_ref(self.credential) if self.credential else None

    @property
    def env_refs(self) -> dict[str, CredentialRef]:
        return {name: parse_ref(ref) for name, ref in self.env.items()}

    @property
    def host(self) -> str:
        """The pinned host of an HTTP server; empty for a stdio one."""
        return (urlsplit(self.url).hostname or "").lower() if self.url else ""


class Mcp(Strict):
    servers: list[McpServer] = []
    allow_stdio: bool = False
    calls_per_minute_per_key: CallLimit | None = None
    calls_per_minute_per_team: CallLimit | None = None

    @model_validator(mode="after")
    def _unique_names(self) -> Mcp:
        seen: set[str] = set()
        for server in self.servers:
            if server.name in seen:
                raise ValueError(f"two MCP servers are named {server.name!r}")
            seen.add(server.name)
            if server.transport == "stdio" and not self.allow_stdio:
                raise ValueError(
                    f"MCP server {server.name!r} is a local stdio server: it runs on this host "
                    "outside the egress guard; set mcp.allow_stdio: true to allow it"
                )
        return self
