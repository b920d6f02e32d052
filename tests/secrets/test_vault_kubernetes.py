"""Vault's Kubernetes auth method on a real OpenBao, against a fake Kubernetes TokenReview API.

OpenBao's kubernetes auth mount validates a service-account token by asking the Kubernetes API
(``POST /apis/authentication.k8s.io/v1/tokenreviews``). There is no Kubernetes here, so
``FakeTokenReview`` answers that one call on loopback, over TLS with a certificate from a CA made
in the test: it is the one test double in these tests. Everything else is real: the OpenBao
kubernetes auth mount (``kubernetes_host`` pointing at the fake, ``disable_local_ca_jwt``), a role
bound to the service account ``gateway`` in namespace ``llm``, and the gateway's own login with a
token file, as in a pod.

What is proven: the login with the token file reads the secret (and OpenBao did ask the fake about
that very token); a token the TokenReview rejects is a clear login error, and the token appears
in no message and no log record; a revoked Vault token leads to one new login; an expired one is
replaced by a new login that reads the token file again (a kubelet rotates it); a renewable token
is renewed instead of logging in again; and when a renewal is refused because OpenBao's fresh
review of the old service-account token fails, the gateway logs in at once with the rotated one.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import hvac.exceptions
import pytest

from gateway.errors import SecretUnavailable
from gateway.refs import parse_ref
from gateway.secrets.broker import SecretBroker
from gateway.secrets.errors import AccessDenied
from gateway.secrets.vault import VaultResolver
from tests.secrets.throwaway_ca import ThrowawayCA
from tests.secrets.vaultlab import VaultLab, run

pytestmark = pytest.mark.openbao

TOKEN_REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
NAMESPACE, SERVICE_ACCOUNT, UID = "llm", "gateway", str(uuid.uuid4())


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def service_account_token() -> str:
    """A token shaped like a Kubernetes service-account JWT. OpenBao reads its claims but leaves
    the signature to the TokenReview, so the signature here is random bytes."""
    now = int(time.time())
    claims = {
        "iss": "kubernetes/serviceaccount",
        "sub": f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}",
        "kubernetes.io/serviceaccount/namespace": NAMESPACE,
        "kubernetes.io/serviceaccount/service-account.name": SERVICE_ACCOUNT,
        "kubernetes.io/serviceaccount/service-account.uid": UID,
        "iat": now,
        "exp": now + 3600,
    }
    header = b64url(json.dumps({"alg": "RS256", "kid": "test"}).encode())
    return f"{header}.{b64url(json.dumps(claims).encode())}.{b64url(secrets.token_bytes(64))}"


class FakeTokenReview:
    """Kubernetes' TokenReview API, nothing else: tokens in ``accepted`` are the service account
    llm/gateway, any other is unauthenticated. ``reviewed`` lists every token asked about."""

    def __init__(self, directory: Path) -> None:
        ca = ThrowawayCA(directory, "kubernetes")
        certificate = ca.issue("apiserver", server=True)
        self.ca_pem = ca.cert.read_text()
        self.accepted: set[str] = set()
        self.reviewed: list[str] = []
        review = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                token = body["spec"]["token"]
                if self.path != TOKEN_REVIEW_PATH or not self.headers["Authorization"]:
                    self.send_error(404 if self.path != TOKEN_REVIEW_PATH else 401)
                    return
                review.reviewed.append(token)
                self.answer(review.status(token))

            def answer(self, status: dict[str, Any]) -> None:
                reply = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview"}
                data = json.dumps(reply | {"status": status}).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificate.cert, certificate.key)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def status(self, token: str) -> dict[str, Any]:
        if token not in self.accepted:
            return {"authenticated": False, "error": "invalid bearer token"}
        user = f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"
        groups = ["system:serviceaccounts", f"system:serviceaccounts:{NAMESPACE}"]
        return {"authenticated": True, "user": {"username": user, "uid": UID, "groups": groups}}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@pytest.fixture
def review(tmp_path: Path) -> Iterator[FakeTokenReview]:
    fake = FakeTokenReview(tmp_path)
    yield fake
    fake.close()


class Pod:
    """A kubernetes auth mount and role on the lab's OpenBao, a secret the role may read, and the
    gateway's service-account token file (what the kubelet mounts into the pod)."""

    def __init__(self, lab: VaultLab, review: FakeTokenReview, **role: Any) -> None:
        self.lab = lab
        self.review = review
        self.mount = "k8s-" + uuid.uuid4().hex[:8]
        path = "llm/" + uuid.uuid4().hex
        self.value = "sk-k8s-" + secrets.token_hex(12)
        lab.put(path, api_key=self.value)
        self.ref = parse_ref(f"vault:{lab.kv2}/{path}#api_key")
        root = lab.root
        root.sys.enable_auth_method("kubernetes", path=self.mount)
        config = {
            "kubernetes_host": review.url,
            "kubernetes_ca_cert": review.ca_pem,
            "disable_local_ca_jwt": True,
        }
        root.write_data(f"auth/{self.mount}/config", data=config)
        root.sys.create_or_update_policy(
            name=self.mount, policy=lab.read_policy(f"{lab.kv2}/data/{path}")
        )
        binding = {
            "bound_service_account_names": [SERVICE_ACCOUNT],
            "bound_service_account_namespaces": [NAMESPACE],
            "token_policies": [self.mount],
        }
        root.write_data(f"auth/{self.mount}/role/gateway", data=binding | role)
        self.token_file = lab.tmp / ("sa-token-" + uuid.uuid4().hex[:8])

    def mount_token(self, accepted: bool = True) -> str:
        """Write a new service-account token to the file (as the kubelet does on rotation)."""
        token = service_account_token()
        if accepted:
            self.review.accepted.add(token)
        self.token_file.write_text(token)
        self.token_file.chmod(0o600)
        return token

    def resolver(self) -> VaultResolver:
        auth = {
            "method": "kubernetes",
            "mount": self.mount,
            "role": "gateway",
            "token_file": str(self.token_file),
        }
        return VaultResolver(self.lab.settings(auth))

    def vault_logins(self) -> int:
        return self._succeeded(f"auth/{self.mount}/login")

    def renewals(self) -> int:
        return self._succeeded("auth/token/renew-self")

    def _succeeded(self, path: str) -> int:
        server = self.lab.server
        assert not server.external
        lines = server.audit_log.read_text().splitlines()  # type: ignore[union-attr]
        return sum(
            1
            for line in lines
            if (entry := json.loads(line)).get("type") == "response"
            and entry["request"]["path"] == path
            and "error" not in entry
        )


def test_kubernetes_login_with_the_service_account_token_reads_the_secret(
    lab: VaultLab, review: FakeTokenReview
) -> None:
    pod = Pod(lab, review)
    token = pod.mount_token()
    resolver = pod.resolver()

    async def fetch() -> str:
        try:
            return (await resolver.fetch(pod.ref)).reveal()
        finally:
            await resolver.close()

    assert run(fetch()) == pod.value
    assert review.reviewed == [token]  # OpenBao asked the TokenReview API about this token


def test_a_token_the_token_review_rejects_is_a_clear_login_error_and_never_shown(
    lab: VaultLab, review: FakeTokenReview, caplog: pytest.LogCaptureFixture
) -> None:
    pod = Pod(lab, review)
    token = pod.mount_token(accepted=False)
    with pytest.raises(AccessDenied) as caught:
        pod.resolver().login_blocking()
    assert str(caught.value) == "login (kubernetes): Vault denied permission"
    assert review.reviewed == [token]

    broker = SecretBroker({"vault": pod.resolver()})

    async def through_the_broker() -> None:
        try:
            await broker.get(pod.ref)
        finally:
            await broker.close()

    with caplog.at_level(logging.DEBUG), pytest.raises(SecretUnavailable):
        run(through_the_broker())
    reasons = [str(getattr(r, "sg_reason", "")) for r in caplog.records]
    assert "login (kubernetes): Vault denied permission" in reasons
    everything = caplog.text + "".join(str(vars(r)) for r in caplog.records)
    assert token not in everything and token.split(".")[2] not in everything
    assert token not in str(caught.value)


def test_a_revoked_token_leads_to_one_new_kubernetes_login(
    bao_lab: VaultLab, review: FakeTokenReview
) -> None:
    pod = Pod(bao_lab, review)
    pod.mount_token()
    resolver = pod.resolver()
    root = bao_lab.root

    async def scenario() -> list[str]:
        first = (await resolver.fetch(pod.ref)).reveal()
        revoked = 0
        for accessor in root.auth.token.list_accessors()["data"]["keys"]:
            try:
                info = root.auth.token.lookup_accessor(accessor)["data"]
            except hvac.exceptions.VaultError:
                continue  # a token that expired or went away while we listed
            if info["path"] == f"auth/{pod.mount}/login":
                root.auth.token.revoke_accessor(accessor)
                revoked += 1
        assert revoked == 1
        second = (await resolver.fetch(pod.ref)).reveal()
        await resolver.close()
        return [first, second]

    assert run(scenario()) == [pod.value] * 2
    assert pod.vault_logins() == 2


def test_an_expired_token_is_replaced_by_a_login_with_the_rotated_token_file(
    bao_lab: VaultLab, review: FakeTokenReview
) -> None:
    pod = Pod(bao_lab, review, token_ttl="2s", token_max_ttl="2s")
    first_token = pod.mount_token()
    resolver = pod.resolver()

    async def scenario() -> list[str]:
        first = (await resolver.fetch(pod.ref)).reveal()
        rotated = pod.mount_token()
        review.accepted.discard(first_token)  # the old token is no longer valid either
        await asyncio.sleep(2.5)  # past the token's max TTL: it cannot be renewed any more
        second = (await resolver.fetch(pod.ref)).reveal()
        await resolver.close()
        assert review.reviewed[-1] == rotated
        return [first, second]

    assert run(scenario()) == [pod.value] * 2
    assert review.reviewed[0] == first_token
    assert pod.vault_logins() >= 2


async def until(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    """Wait for something the renewer does in the background (it runs on its own schedule)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the renewer did not get there"
        await asyncio.sleep(0.1)


def test_a_renewable_token_is_renewed_instead_of_logging_in_again(
    bao_lab: VaultLab, review: FakeTokenReview
) -> None:
    pod = Pod(bao_lab, review, token_ttl="6s", token_max_ttl="1h")
    token = pod.mount_token()
    resolver = pod.resolver()

    async def scenario() -> list[str]:
        first = (await resolver.fetch(pod.ref)).reveal()
        await until(lambda: pod.renewals() == 1)
        second = (await resolver.fetch(pod.ref)).reveal()
        await resolver.close()
        return [first, second]

    assert run(scenario()) == [pod.value] * 2
    assert pod.vault_logins() == 1
    assert review.reviewed == [token, token]  # OpenBao reviews the token again to renew


def test_a_renewal_the_token_review_refuses_leads_at_once_to_a_login_with_the_rotated_token(
    bao_lab: VaultLab, review: FakeTokenReview
) -> None:
    pod = Pod(bao_lab, review, token_ttl="6s", token_max_ttl="1h")
    first_token = pod.mount_token()
    resolver = pod.resolver()

    async def scenario() -> list[str]:
        first = (await resolver.fetch(pod.ref)).reveal()
        rotated = pod.mount_token()  # the kubelet rotates the token; the old one is revoked
        review.accepted.discard(first_token)
        await until(lambda: pod.vault_logins() == 2)
        assert review.reviewed == [first_token, first_token, rotated]
        second = (await resolver.fetch(pod.ref)).reveal()
        await resolver.close()
        return [first, second]

    assert run(scenario()) == [pod.value] * 2
    assert pod.renewals() == 0  # the one renewal attempt was refused
