"""OpenID Connect: the dashboard's single sign-on, and JWT bearers on the admin API.

    discover         <issuer>/.well-known/openid-configuration, once (its issuer must match)
    authorize_url    the authorization code request, with PKCE (S256), state and nonce
    exchange         code + verifier -> ID token, at the token endpoint (a public client)
    verify           signature against the provider's JWKS (PyJWT's PyJWKClient: a key id it has
                     not seen fetches the set again, so a rotated key is picked up), an asymmetric
                     algorithm only, issuer, audience, expiry, and the nonce when one was sent;
                     the set is fetched again at most once per ``jwks_refresh_seconds``
    actor            the claims -> who this is in the audit log and which role it has, from
                     ``roles_claim`` through the configured mappings (first match in config
                     order); a value that maps to nothing signs nobody in

The provider is called from a worker thread (urllib), with the configured timeout. No code,
token or claim value reaches a log line or an error body.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from gateway.config.ui import Oidc
from gateway.errors import AuthenticationFailed, PermissionDenied
from gateway.governance.audit import Actor
from gateway.governance.tenancy import Tenancy

if TYPE_CHECKING:  # PyJWT is imported by the first sign-in or bearer check, not at start-up
    import jwt

# Only asymmetric signatures: a shared-secret (HS*) token could be minted by anyone who holds the
# client's configuration, and "none" is no signature at all.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")
JWKS_LIFESPAN_SECONDS = 300.0
MAX_DOCUMENT_BYTES = 1 << 20


def pkce_pair() -> tuple[str, str]:
    """A PKCE verifier and its S256 challenge (RFC 7636)."""
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def looks_like_jwt(token: str) -> bool:
    return token.startswith("ey") and token.count(".") == 2


class OidcClient:
    def __init__(self, settings: Oidc, tenancy: Tenancy) -> None:
        self.settings = settings
        self.tenancy = tenancy
        self._metadata: dict[str, Any] | None = None
        self._jwks: jwt.PyJWKClient | None = None
        self._lock = threading.Lock()

    # the provider (blocking: call from a worker thread)

    def _get_json(self, url: str, data: bytes | None = None) -> dict[str, Any]:
        request = urllib.request.Request(url, data=data, headers={"Accept": "application/json"})  # noqa: S310 - the operator's issuer
        if data is not None:
            request.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            with urllib.request.urlopen(request, timeout=self.settings.timeout_seconds) as answer:  # noqa: S310
                body = answer.read(MAX_DOCUMENT_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise AuthenticationFailed(
                f"the identity provider refused the request (HTTP {exc.code})", code="oidc_refused"
            ) from None
        except (OSError, ValueError):
            raise AuthenticationFailed(
                "the identity provider could not be reached", code="oidc_unreachable"
            ) from None
        if len(body) > MAX_DOCUMENT_BYTES:
            raise AuthenticationFailed("the identity provider's answer is too large")
        try:
            parsed = json.loads(body)
        except ValueError:
            raise AuthenticationFailed("the identity provider's answer is not JSON") from None
        if not isinstance(parsed, dict):
            raise AuthenticationFailed("the identity provider's answer is not a JSON object")
        return parsed

    def metadata(self) -> dict[str, Any]:
        with self._lock:
            if self._metadata is None:
                issuer = self.settings.issuer.rstrip("/")
                found = self._get_json(f"{issuer}/.well-known/openid-configuration")
                if str(found.get("issuer", "")).rstrip("/") != issuer:
                    raise AuthenticationFailed(
                        "the identity provider's discovery names another issuer",
                        code="oidc_issuer_mismatch",
                    )
                for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                    if not isinstance(found.get(name), str):
                        raise AuthenticationFailed(f"the provider's discovery has no {name}")
                self._metadata = found
                import jwt

                self._jwks = jwt.PyJWKClient(
                    found["jwks_uri"],
                    cache_keys=False,
                    lifespan=int(JWKS_LIFESPAN_SECONDS),
                    timeout=self.settings.timeout_seconds,
                    cooldown_duration=self.settings.jwks_refresh_seconds,
                )
            return self._metadata

    def authorize_url(self, state: str, challenge: str, nonce: str) -> str:
        query = {
            "response_type": "code",
            "client_id": self.settings.client_id,
            "redirect_uri": self.settings.redirect_url,
            "scope": " ".join(self.settings.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        endpoint = self.metadata()["authorization_endpoint"]
        joiner = "&" if "?" in endpoint else "?"
        return f"{endpoint}{joiner}{urllib.parse.urlencode(query)}"

    def exchange(self, code: str, verifier: str) -> str:
        """The ID token for an authorization code."""
        form = urllib.parse.urlencode(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.settings.redirect_url,
                "client_id": self.settings.client_id,
                "code_verifier": verifier,
            }
        ).encode()
        answer = self._get_json(self.metadata()["token_endpoint"], form)
        token = answer.get("id_token")
        if not isinstance(token, str):
            raise AuthenticationFailed("the identity provider returned no ID token")
        return token

    def verify(
        self, token: str, nonce: str | None = None, audience: str | None = None
    ) -> dict[str, Any]:
        """The claims of a token the provider signed for us; AuthenticationFailed otherwise."""
        self.metadata()
        assert self._jwks is not None
        import jwt

        try:
            key = self._jwks.get_signing_key_from_jwt(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=list(ALGORITHMS),
                audience=audience or self.settings.audience or self.settings.client_id,
                issuer=self.metadata()["issuer"],
                leeway=self.settings.leeway_seconds,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except (jwt.PyJWKClientError, jwt.InvalidTokenError) as exc:
            raise AuthenticationFailed(
                f"the identity token was refused ({type(exc).__name__})", code="invalid_token"
            ) from None
        if nonce is not None and claims.get("nonce") != nonce:
            raise AuthenticationFailed("the identity token's nonce does not match this sign-in")
        return claims

    def actor(self, claims: dict[str, Any]) -> Actor:
        """Who the claims say this is, with the role its first matching mapping gives."""
        values = _strings(claims.get(self.settings.roles_claim))
        name = str(claims.get(self.settings.name_claim) or claims["sub"])
        for mapping in self.settings.roles:
            if mapping.value not in values:
                continue
            team_id = None
            if mapping.team is not None:
                team_id = self._team_id(mapping.team)
            return Actor(f"oidc:{name}"[:64], mapping.role, team_id)
        raise PermissionDenied(
            "this identity has no role at this gateway: none of its "
            f"{self.settings.roles_claim!r} values is mapped (ui.oidc.roles)",
            code="oidc_unmapped",
        )

    def _team_id(self, team: str) -> str:
        found = self.tenancy.team(team)
        if found is not None:
            return found.id
        for candidate in self.tenancy.teams():
            if candidate.name == team:
                return candidate.id
        raise PermissionDenied(
            f"the role mapping names team {team!r}, which does not exist", code="oidc_unmapped"
        )


def _strings(value: Any) -> Sequence[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []
