"""The ``ui`` section of the config: the admin dashboard at /ui, and OpenID Connect sign-in.

    ui:
      enabled: true                  # default false: the dashboard is off until asked for
      session_idle_seconds: 1800     # a session with no request for this long ends
      session_max_seconds: 43200     # and every session ends this long after sign-in
      secure_cookies: false          # true: Secure cookies even over plain HTTP (TLS at a proxy)
      oidc:                          # optional: single sign-on, and JWT bearers on /admin
        issuer: https://idp.example.com/  # <issuer>/.well-known/openid-configuration
        client_id: sealgate
        redirect_url: https://gateway.example.com/ui/oidc/callback
        scopes: [openid, groups]
        roles_claim: groups          # a claim holding a string or a list of strings
        name_claim: sub              # what the audit log calls the signed-in person
        audience: null               # for JWT bearers on /admin; default: client_id
        roles:
          - {value: llm-platform, role: admin}
          - {value: team-research-leads, role: team_admin, team: research}   # a team's name or id
          - {value: auditors, role: viewer}

The dashboard is off by default, and not on by default for a loopback bind either: a gateway on
127.0.0.1 behind a reverse proxy or a port-forward is reachable from anywhere the proxy is, so
the bind address says nothing about who can reach the pages. An operator turns it on.

The OpenID Connect client is public (PKCE, no client secret): nothing more to keep in Vault, and
the code is bound to this sign-in by its verifier. A claim value that maps to no role signs
nobody in.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_IDLE_SECONDS = 30 * 60
DEFAULT_MAX_SECONDS = 12 * 3600


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RoleMapping(_Strict):
    value: str = Field(min_length=1, max_length=200)  # one value of the roles claim
    role: Literal["admin", "team_admin", "viewer"]
    team: str | None = Field(None, min_length=1, max_length=200)  # a team's name or id

    @model_validator(mode="after")
    def _team(self) -> RoleMapping:
        if self.role == "team_admin" and self.team is None:
            raise ValueError("a team_admin mapping names its team (team: <name or id>)")
        if self.role == "admin" and self.team is not None:
            raise ValueError("an admin mapping names no team")
        return self


class Oidc(_Strict):
    issuer: str = Field(pattern=r"^https?://")
    client_id: str = Field(min_length=1, max_length=200)
    redirect_url: str = Field(pattern=r"^https?://")
    scopes: list[str] = Field(["openid"], min_length=1)
    roles_claim: str = Field("groups", min_length=1)
    name_claim: str = Field("sub", min_length=1)
    audience: str | None = None
    roles: list[RoleMapping] = Field(min_length=1)
    timeout_seconds: float = Field(5.0, gt=0, le=60)
    leeway_seconds: float = Field(30.0, ge=0, le=300)
    # An unknown key id fetches the provider's key set again at most once per this long, so a
    # stream of tokens with made-up key ids cannot make the gateway hammer the provider.
    jwks_refresh_seconds: float = Field(30.0, ge=0, le=3600)

    @model_validator(mode="after")
    def _openid(self) -> Oidc:
        if "openid" not in self.scopes:
            raise ValueError("scopes must include openid")
        return self


class Ui(_Strict):
    enabled: bool = False
    session_idle_seconds: float = Field(DEFAULT_IDLE_SECONDS, ge=60, le=86400)
    session_max_seconds: float = Field(DEFAULT_MAX_SECONDS, ge=60, le=30 * 86400)
    # Cookies are Secure when the request came over TLS; true: always (TLS ends at a proxy).
    secure_cookies: bool = False
    oidc: Oidc | None = None
