"""The OIDC client's own rules, with no provider: role mapping (first match in config order, a
team by name or id, a string or list claim, nothing mapped refused), PKCE's S256 challenge, and
the key set fetched again at most once per ``jwks_refresh_seconds`` however many unknown key ids
arrive. For the last one the provider is a loopback HTTP server of the test's own that counts the
fetches (OpenBao does not audit its unauthenticated key-set endpoint, so it cannot be counted
there); test_oidc.py runs everything else against OpenBao."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import Engine

from gateway.config.ui import Oidc
from gateway.errors import AuthenticationFailed, PermissionDenied
from gateway.governance.oidc import OidcClient, pkce_pair
from gateway.governance.tenancy import Tenancy
from gateway.store.db import make_engine, migrate


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    made = make_engine(f"sqlite:///{tmp_path / 'oidc.db'}")
    migrate(made)
    yield made
    made.dispose()


def settings(issuer: str = "http://127.0.0.1:1/none", **extra: Any) -> Oidc:
    roles = [
        {"value": "platform", "role": "admin"},
        {"value": "leads", "role": "team_admin", "team": "research"},
        {"value": "readers", "role": "viewer"},
    ]
    return Oidc.model_validate(
        {
            "issuer": issuer,
            "client_id": "sealgate",
            "redirect_url": "http://127.0.0.1:1/ui/oidc/callback",
            "roles_claim": "groups",
            "name_claim": "email",
            "roles": roles,
            **extra,
        }
    )


def test_the_first_mapping_in_config_order_decides_the_role(engine: Engine) -> None:
    tenancy = Tenancy(engine)
    team = tenancy.create_team("research", None, None, {})
    client = OidcClient(settings(), tenancy)
    both = client.actor({"sub": "1", "email": "a@x", "groups": ["readers", "platform"]})
    assert (both.name, both.role, both.team_id) == ("oidc:a@x", "admin", None)
    lead = client.actor({"sub": "2", "email": "l@x", "groups": "leads"})  # a string claim
    assert (lead.role, lead.team_id) == ("team_admin", team.id)
    reader = client.actor({"sub": "3", "groups": ["readers"]})  # no email: the subject
    assert (reader.name, reader.role) == ("oidc:3", "viewer")


def test_an_identity_with_no_mapped_value_or_an_unknown_team_is_refused(engine: Engine) -> None:
    client = OidcClient(settings(), Tenancy(engine))
    for claims in ({"sub": "1", "groups": ["others"]}, {"sub": "1"}, {"sub": "1", "groups": 7}):
        with pytest.raises(PermissionDenied, match="no role at this gateway"):
            client.actor(claims)
    with pytest.raises(PermissionDenied, match="does not exist"):
        client.actor({"sub": "1", "groups": ["leads"]})  # the team "research" was never made


def test_a_mapping_is_checked_when_the_config_is_read() -> None:
    with pytest.raises(ValueError, match="names its team"):
        settings(roles=[{"value": "x", "role": "team_admin"}])
    with pytest.raises(ValueError, match="names no team"):
        settings(roles=[{"value": "x", "role": "admin", "team": "t"}])
    with pytest.raises(ValueError, match="openid"):
        settings(scopes=["groups"])


def test_the_pkce_challenge_is_the_s256_of_the_verifier() -> None:
    verifier, challenge = pkce_pair()
    assert 43 <= len(verifier) <= 128
    digest = hashlib.sha256(verifier.encode()).digest()
    assert challenge == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class Provider(BaseHTTPRequestHandler):
    issuer = ""
    jwks: ClassVar[dict[str, Any]] = {}
    fetches = 0

    def do_GET(self) -> None:
        if self.path.endswith("/.well-known/openid-configuration"):
            body = {
                "issuer": self.issuer,
                "authorization_endpoint": self.issuer + "/authorize",
                "token_endpoint": self.issuer + "/token",
                "jwks_uri": self.issuer + "/keys",
            }
        else:
            type(self).fetches += 1
            body = self.jwks
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def test_unknown_key_ids_fetch_the_key_set_at_most_once_per_refresh_interval(
    engine: Engine,
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    server = ThreadingHTTPServer(("127.0.0.1", 0), Provider)
    Provider.issuer = f"http://127.0.0.1:{server.server_port}/idp"
    Provider.jwks = {"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]}
    Provider.fetches = 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = OidcClient(settings(Provider.issuer, jwks_refresh_seconds=2), Tenancy(engine))
        now = int(time.time())
        claims = {
            "iss": Provider.issuer,
            "aud": "sealgate",
            "sub": "1",
            "iat": now,
            "exp": now + 60,
        }
        good = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
        assert client.verify(good)["sub"] == "1"
        for _ in range(20):
            forged = jwt.encode(
                claims, key, algorithm="RS256", headers={"kid": secrets.token_hex(8)}
            )
            with pytest.raises(AuthenticationFailed):
                client.verify(forged)
        assert Provider.fetches <= 2  # the first fetch, and at most one refresh
        assert client.verify(good)["sub"] == "1"
    finally:
        server.shutdown()
        server.server_close()
