"""OpenBao's identity OIDC provider as a real OpenID Connect provider on loopback.

``OidcProvider.configure`` sets up, through OpenBao's HTTP API: a userpass login per person, an
entity for each (named after the person) in the groups given, a signing key (RS256), a public
client (PKCE, no secret) whose redirect URI is the gateway's callback, a ``groups`` scope that
puts the entity's group names and name into the ID token, and the provider itself.

``authorize`` is the user agent's part of the code flow. The provider's authorization endpoint
is OpenBao's web UI, which signs the person in and then calls the provider's authorize API with
that person's OpenBao token; here the test signs in with userpass and calls that same API with
the same query the gateway's redirect carries, and gets the code and state the UI would pass on
to the redirect URI.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import hvac

from tests.secrets.openbao_server import OpenBao

PROVIDER = "sealgate"
KEY = "sealgate-signing"
SCOPE_TEMPLATE = (
    '{"groups": {{identity.entity.groups.names}}, "username": {{identity.entity.name}}}'
)


@dataclass
class OidcProvider:
    bao: OpenBao
    client_id: str = ""
    passwords: dict[str, str] = field(default_factory=dict)

    @property
    def issuer(self) -> str:
        return f"{self.bao.address}/v1/identity/oidc/provider/{PROVIDER}"

    def _client(self) -> hvac.Client:
        return hvac.Client(url=self.bao.address, token=self.bao.root_token)

    def _write(self, path: str, **data: Any) -> Any:
        return self._client().adapter.post(f"/v1/{path}", json=data)

    def configure(self, redirect_url: str, people: dict[str, list[str]]) -> None:
        client = self._client()
        client.sys.enable_auth_method("userpass")
        groups: dict[str, list[str]] = {}
        for person, member_of in people.items():
            password = f"pw-{person}-for-tests"
            self.passwords[person] = password
            self._write(f"auth/userpass/users/{person}", password=password)
            login = client.adapter.post(
                f"/v1/auth/userpass/login/{person}", json={"password": password}
            )
            entity = login["auth"]["entity_id"]
            self._write(f"identity/entity/id/{entity}", name=person)
            for group in member_of:
                groups.setdefault(group, []).append(entity)
        for group, members in groups.items():
            self._write("identity/group", name=group, member_entity_ids=members)
        self._write(
            f"identity/oidc/key/{KEY}",
            allowed_client_ids="*",
            algorithm="RS256",
            rotation_period="24h",
            verification_ttl="24h",
        )
        self._write(
            "identity/oidc/client/sealgate",
            redirect_uris=[redirect_url],
            assignments=["allow_all"],
            key=KEY,
            client_type="public",
            id_token_ttl="10m",
            access_token_ttl="10m",
        )
        found = client.adapter.get("/v1/identity/oidc/client/sealgate")
        self.client_id = found["data"]["client_id"]
        template = base64.b64encode(SCOPE_TEMPLATE.encode()).decode()
        self._write("identity/oidc/scope/groups", template=template)
        self._write(
            f"identity/oidc/provider/{PROVIDER}",
            allowed_client_ids=[self.client_id],
            scopes_supported=["groups"],
        )

    def rotate_key(self) -> None:
        self._write(f"identity/oidc/key/{KEY}/rotate")

    def bao_token(self, person: str) -> str:
        login = self._client().adapter.post(
            f"/v1/auth/userpass/login/{person}", json={"password": self.passwords[person]}
        )
        return str(login["auth"]["client_token"])

    def authorize(self, authorization_url: str, person: str) -> dict[str, str]:
        """The code and state for ``person``, for the authorization request the gateway sent the
        browser to (as OpenBao's UI gets them once the person has signed in)."""
        query = urllib.parse.urlsplit(authorization_url).query
        api = f"{self.issuer}/authorize?{query}"
        request = urllib.request.Request(api, headers={"X-Vault-Token": self.bao_token(person)})
        with urllib.request.urlopen(request, timeout=10) as answer:
            found: dict[str, str] = json.load(answer)
        return found

    def id_token(self, person: str, redirect_url: str, verifier: str, challenge: str) -> str:
        """An ID token for ``person`` by the whole code flow, as an automation client would get
        it (the test as the OIDC client)."""
        query = urllib.parse.urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": redirect_url,
                "scope": "openid groups",
                "state": "automation",
                "nonce": "automation",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        code = self.authorize(f"{self.issuer}/authorize?{query}", person)["code"]
        form = urllib.parse.urlencode(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_url,
                "client_id": self.client_id,
                "code_verifier": verifier,
            }
        ).encode()
        with urllib.request.urlopen(f"{self.issuer}/token", data=form, timeout=10) as answer:
            return str(json.load(answer)["id_token"])
