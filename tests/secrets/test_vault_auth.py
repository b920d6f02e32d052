"""Logging in to a real OpenBao: AppRole (plain and response-wrapped secret_id), JWT with a key
pair made in the test, and one re-login when the token is revoked or expires."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid

import hvac.exceptions
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from gateway.refs import parse_ref
from gateway.secrets.errors import AccessDenied
from gateway.secrets.vault import VaultResolver
from tests.secrets.vaultlab import VaultLab, enable_approle, run

pytestmark = pytest.mark.openbao


def approle_setup(lab: VaultLab, **role: object) -> tuple[str, VaultResolver, str]:
    """A secret, an AppRole that may read it, and a resolver logging in with that AppRole."""
    p = "llm/" + uuid.uuid4().hex
    lab.put(p, api_key="sk-approle-000000000000000")
    mount, role_id, name = enable_approle(lab, lab.read_policy(f"{lab.kv2}/data/{p}"), **role)
    secret_id = lab.root.auth.approle.generate_secret_id(name, mount_point=mount)
    auth = {
        "method": "approle",
        "mount": mount,
        "role_id": role_id,
        "secret_id": lab.file_ref(secret_id["data"]["secret_id"]),
    }
    return f"vault:{lab.kv2}/{p}#api_key", VaultResolver(lab.settings(auth)), mount


def test_approle_login_reads_the_secret(lab: VaultLab) -> None:
    ref, resolver, _ = approle_setup(lab)

    async def fetch() -> str:
        try:
            return (await resolver.fetch(parse_ref(ref))).reveal()
        finally:
            await resolver.close()

    assert run(fetch()) == "sk-approle-000000000000000"


def test_a_response_wrapped_secret_id_is_unwrapped_and_works(lab: VaultLab) -> None:
    p = "llm/" + uuid.uuid4().hex
    lab.put(p, api_key="sk-wrapped-000000000000000")
    mount, role_id, name = enable_approle(lab, lab.read_policy(f"{lab.kv2}/data/{p}"))
    wrapped = lab.root.auth.approle.generate_secret_id(name, mount_point=mount, wrap_ttl="60s")
    auth = {
        "method": "approle",
        "mount": mount,
        "role_id": role_id,
        "secret_id": lab.file_ref(wrapped["wrap_info"]["token"]),
        "secret_id_wrapped": True,
    }
    resolver = VaultResolver(lab.settings(auth))

    async def fetch() -> str:
        try:
            return (await resolver.fetch(parse_ref(f"vault:{lab.kv2}/{p}#api_key"))).reveal()
        finally:
            await resolver.close()

    assert run(fetch()) == "sk-wrapped-000000000000000"


def test_a_wrong_secret_id_refuses_login_as_access_denied(lab: VaultLab) -> None:
    _, role_id, _ = enable_approle(lab, lab.read_policy("nothing"))
    auth = {
        "method": "approle",
        "role_id": role_id,
        "secret_id": lab.file_ref(str(uuid.uuid4())),
    }
    resolver = VaultResolver(lab.settings(auth))
    with pytest.raises(AccessDenied, match="login"):
        resolver.login_blocking()


def test_a_revoked_token_leads_to_one_re_login_not_an_outage(bao_lab: VaultLab) -> None:
    ref, resolver, mount = approle_setup(bao_lab)

    async def scenario() -> list[str]:
        first = (await resolver.fetch(parse_ref(ref))).reveal()
        assert revoke_logins(bao_lab, mount) == 1
        second = (await resolver.fetch(parse_ref(ref))).reveal()
        await resolver.close()
        return [first, second]

    assert run(scenario()) == ["sk-approle-000000000000000"] * 2
    assert logins(bao_lab, mount) == 2


def test_an_expired_token_is_replaced_by_a_new_login(bao_lab: VaultLab) -> None:
    ref, resolver, mount = approle_setup(bao_lab, token_ttl="2s", token_max_ttl="2s")

    async def scenario() -> list[str]:
        first = (await resolver.fetch(parse_ref(ref))).reveal()
        await asyncio.sleep(2.5)  # past the token's max TTL: it cannot be renewed any more
        second = (await resolver.fetch(parse_ref(ref))).reveal()
        await resolver.close()
        return [first, second]

    assert run(scenario()) == ["sk-approle-000000000000000"] * 2
    assert logins(bao_lab, mount) >= 2


def logins(lab: VaultLab, mount: str) -> int:
    server = lab.server
    assert not server.external
    lines = server.audit_log.read_text().splitlines()  # type: ignore[union-attr]
    return sum(
        1
        for line in lines
        if (entry := json.loads(line)).get("type") == "response"
        and entry["request"]["path"] == f"auth/{mount}/login"
        and "error" not in entry
    )


# -- JWT ------------------------------------------------------------------------------------
def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def es256_jwt(key: ec.EllipticCurvePrivateKey, claims: dict[str, object]) -> str:
    header = b64url(json.dumps({"alg": "ES256", "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims).encode())
    signing_input = f"{header}.{payload}".encode()
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    return f"{header}.{payload}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def test_jwt_login_with_a_workload_identity_token_reads_the_secret(lab: VaultLab) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    mount = "jwt-" + uuid.uuid4().hex[:8]
    p = "llm/" + uuid.uuid4().hex
    lab.put(p, api_key="sk-jwt-00000000000000000000")
    lab.root.sys.enable_auth_method("jwt", path=mount)
    lab.root.sys.create_or_update_policy(name=mount, policy=lab.read_policy(f"{lab.kv2}/data/{p}"))
    lab.root.write_data(f"auth/{mount}/config", data={"jwt_validation_pubkeys": [public_pem]})
    lab.root.write_data(
        f"auth/{mount}/role/gateway",
        data={
            "role_type": "jwt",
            "bound_audiences": ["sealgate"],
            "user_claim": "sub",
            "token_policies": [mount],
            "token_ttl": "5m",
        },
    )
    now = int(time.time())
    token = es256_jwt(
        key,
        {
            "sub": "system:serviceaccount:llm:gateway",
            "aud": "sealgate",
            "iat": now,
            "nbf": now - 5,
            "exp": now + 300,
        },
    )
    auth = {"method": "jwt", "mount": mount, "role": "gateway", "jwt": lab.file_ref(token)}
    resolver = VaultResolver(lab.settings(auth))

    async def fetch() -> str:
        try:
            return (await resolver.fetch(parse_ref(f"vault:{lab.kv2}/{p}#api_key"))).reveal()
        finally:
            await resolver.close()

    assert run(fetch()) == "sk-jwt-00000000000000000000"


def revoke_logins(lab: VaultLab, mount: str) -> int:
    """Revoke every token the gateway got by logging in through ``mount``; how many."""
    root = lab.root
    revoked = 0
    for accessor in root.auth.token.list_accessors()["data"]["keys"]:
        try:
            info = root.auth.token.lookup_accessor(accessor)["data"]
        except hvac.exceptions.VaultError:
            continue  # a token that expired or went away while we listed
        if info["path"] == f"auth/{mount}/login":
            root.auth.token.revoke_accessor(accessor)
            revoked += 1
    return revoked


def test_the_readiness_check_logs_in_again_when_it_finds_the_token_revoked(
    bao_lab: VaultLab,
) -> None:
    # Issue 13.5: readiness said "authenticated: false" until the next secret fetch logged in
    # again (up to the secret TTL), while requests were served from the cache.
    ref, resolver, mount = approle_setup(bao_lab)

    async def scenario() -> list[dict[str, object]]:
        await resolver.fetch(parse_ref(ref))
        assert revoke_logins(bao_lab, mount) == 1
        found = [await resolver.health(), await resolver.health()]
        await resolver.close()
        return found

    healthy = {"ok": True, "reachable": True, "authenticated": True}
    assert run(scenario()) == [healthy, healthy]
    assert logins(bao_lab, mount) == 2  # one at the first fetch, one by the readiness check


def test_renewal_that_finds_the_operator_token_revoked_reads_the_reference_again(
    bao_lab: VaultLab,
) -> None:
    # Issue 13.5, the renewal's half: a refused renewal of a `token`-method token was only
    # logged; now, when the token is gone, the reference is read again at once (an agent may
    # have put a new token there), so the next fetch needs no 403 and no re-login.
    p = "llm/" + uuid.uuid4().hex
    bao_lab.put(p, api_key="sk-renewed-0000000000000000")
    policy = bao_lab.read_policy(f"{bao_lab.kv2}/data/{p}")
    first = bao_lab.token(policy, ttl="6s", explicit_max_ttl="120s", renewable=True)
    token_file = bao_lab.file_ref(first)
    resolver = VaultResolver(bao_lab.settings({"method": "token", "token": token_file}))
    ref = parse_ref(f"vault:{bao_lab.kv2}/{p}#api_key")

    async def scenario() -> str:
        await resolver.fetch(ref)  # starts the renewal: due at 4 s, two thirds of the TTL
        bao_lab.root.auth.token.revoke(first)
        with open(token_file.removeprefix("file:"), "w") as replaced:
            replaced.write(bao_lab.token(policy, ttl="60s", renewable=True))
        await asyncio.sleep(4.5)  # past the renewal, before the old token would have expired
        reads_before = bao_lab.server.reads(f"{bao_lab.kv2}/data/{p}")  # type: ignore[attr-defined]
        value = (await resolver.fetch(ref)).reveal()
        reads = bao_lab.server.reads(f"{bao_lab.kv2}/data/{p}")  # type: ignore[attr-defined]
        await resolver.close()
        assert reads - reads_before == 1  # read once, with the new token
        return value

    assert run(scenario()) == "sk-renewed-0000000000000000"
