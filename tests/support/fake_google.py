"""A local Google upstream for tests: the Gemini API, Vertex AI and Google's OAuth token endpoint
on one free loopback port, speaking their wire formats (JSON, and the SSE of
``streamGenerateContent?alt=sse``) and replaying the replies recorded in
tests/assets/providers/google/.

What it checks, as the real services would (and stricter where a leak is concerned):

- Gemini (``/v1beta/models/<model>:<method>``): the API key must come in ``x-goog-api-key``; a
  request without it, or with a wrong one, gets Google's 400 ``API_KEY_INVALID``. A key in the
  URL (any query parameter, or the path) is recorded in ``violations`` and refused.
- The token endpoint (``/token``): a JWT-bearer grant whose assertion is verified with the test
  service account's public key (RS256, ``cryptography``), issued by its ``client_email``, for
  Google's token endpoint as audience, with the cloud-platform scope, not expired. Only then
  does it mint a random access token and remember it.
- Vertex AI (``/v1/projects/<p>/locations/<l>/publishers/google/models/<model>:<method>``):
  ``Authorization: Bearer`` must carry a token this endpoint issued and has not revoked; anything
  else gets Google's 401 ``UNAUTHENTICATED``.

``then(asset, status=...)`` queues the next model call's answer (an asset name under
``google/``); otherwise the answer follows the request (a function call when it offers tools and
has not yet answered one, else text).
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.support import recorded

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
# The audience Google's token endpoint requires of a service account's assertion (google-auth
# names it whatever the key's token_uri is).
AUDIENCE = "https://oauth2.googleapis.com/token"


@dataclass
class Seen:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Queued:
    asset: str
    status: int
    headers: dict[str, str]
    message: str | None = None  # in place of the asset's error.message ({token}: the caller's)
    stream_error: str | None = None  # an error event with this message after the first event


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def google(name: str) -> Any:
    return recorded.reply("google", name)


class FakeGoogle:
    def __init__(self, api_key: str, service_account: rsa.RSAPublicKey, client_email: str) -> None:
        self.api_key = api_key
        self.public_keys = [service_account]  # the service account's keys Google accepts
        self.client_email = client_email
        self.requests: list[Seen] = []
        self.violations: list[str] = []
        self.issued: list[str] = []  # every token minted, in order
        self.valid: set[str] = set()
        self.token_requests = 0
        self.assertions: list[str] = []  # every JWT assertion received (a credential too)
        self.token_refusals: deque[str] = deque()
        self.workload_token: str | None = None  # what STS accepts as the subject token
        self.audience: str | None = None  # the workload identity provider STS expects
        self.expires_in = 3599
        self._queue: deque[Queued] = deque()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- control -----------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    def then(
        self,
        asset: str,
        status: int = 200,
        headers: dict[str, str] | None = None,
        message: str | None = None,
        stream_error: str | None = None,
    ) -> FakeGoogle:
        self._queue.append(Queued(asset, status, headers or {}, message, stream_error))
        return self

    def refuse_next_token(self, description: str) -> FakeGoogle:
        """The next token request is refused with this ``error_description`` ({assertion}: the
        assertion it was sent)."""
        self.token_refusals.append(description)
        return self

    def revoke(self) -> None:
        """Every token issued so far stops being accepted (as after a revocation)."""
        self.valid.clear()

    def reset(self) -> None:
        self.requests.clear()
        self._queue.clear()

    def start(self) -> FakeGoogle:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_post("/v1/token", self._sts)
        app.router.add_post("/v1beta/models/{call}", self._gemini)
        app.router.add_post(
            "/v1/projects/{project}/locations/{location}/publishers/google/models/{call}",
            self._vertex,
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    # -- OAuth -------------------------------------------------------------------------------
    @staticmethod
    def _signed_by(key: rsa.RSAPublicKey, signature: bytes, signed: bytes) -> bool:
        try:
            key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return False
        return True

    def _assertion_ok(self, assertion: str) -> bool:
        try:
            head, claims, signature = assertion.split(".")
            header = json.loads(_b64url(head))
            payload = json.loads(_b64url(claims))
            signed, raw = f"{head}.{claims}".encode(), _b64url(signature)
        except ValueError:
            return False
        if not any(self._signed_by(key, raw, signed) for key in self.public_keys):
            return False
        now = time.time()
        return (
            header.get("alg") == "RS256"
            and payload.get("iss") == self.client_email
            and payload.get("aud") == AUDIENCE
            and SCOPE in str(payload.get("scope", "")).split()
            and payload.get("iat", now + 1000) <= now + 60
            and payload.get("exp", 0) > now
        )

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = await request.post()
        grant = form.get("grant_type")
        assertion = form.get("assertion")
        if grant != "urn:ietf:params:oauth:grant-type:jwt-bearer" or not isinstance(assertion, str):
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        self.assertions.append(assertion)
        if self.token_refusals:
            description = self.token_refusals.popleft().format(assertion=assertion)
            return web.json_response(
                {"error": "invalid_grant", "error_description": description}, status=400
            )
        if not self._assertion_ok(assertion):
            return web.json_response(
                {"error": "invalid_grant", "error_description": "Invalid JWT Signature."},
                status=400,
            )
        token = "ya29.fake-" + secrets.token_urlsafe(32)
        self.issued.append(token)
        self.valid.add(token)
        answer = google("oauth_token") | {"access_token": token, "expires_in": self.expires_in}
        return web.json_response(answer)

    async def _sts(self, request: web.Request) -> web.Response:
        """Google's STS (``sts.googleapis.com/v1/token``): RFC 8693 token exchange of the
        workload's own token for a Google access token (workload identity federation)."""
        self.token_requests += 1
        form = await request.post()
        if (
            form.get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange"
            or form.get("subject_token_type") != "urn:ietf:params:oauth:token-type:jwt"
            or form.get("requested_token_type") != "urn:ietf:params:oauth:token-type:access_token"
            or SCOPE not in str(form.get("scope", "")).split()
        ):
            return web.json_response({"error": "invalid_request"}, status=400)
        if (
            self.workload_token is None
            or form.get("subject_token") != self.workload_token
            or form.get("audience") != self.audience
        ):
            return web.json_response({"error": "invalid_grant"}, status=400)
        token = "ya29.fake-sts-" + secrets.token_urlsafe(32)
        self.issued.append(token)
        self.valid.add(token)
        return web.json_response(
            {
                "access_token": token,
                "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "token_type": "Bearer",
                "expires_in": self.expires_in,
            }
        )

    # -- model calls -------------------------------------------------------------------------
    async def _record(self, request: web.Request) -> Seen:
        raw = await request.read()
        seen = Seen(
            request.path,
            dict(request.query),
            dict(request.headers),
            json.loads(raw) if raw else None,
        )
        self.requests.append(seen)
        return seen

    async def _gemini(self, request: web.Request) -> web.StreamResponse:
        seen = await self._record(request)
        if "key" in request.query or self.api_key in str(request.url):
            self.violations.append(f"the API key was in the URL: {request.path}")
            return web.json_response(google("error_api_key_invalid"), status=400)
        if "Authorization" in request.headers:
            self.violations.append("a Gemini API request carried an Authorization header")
        if request.headers.get("x-goog-api-key") != self.api_key:
            return web.json_response(google("error_api_key_invalid"), status=400)
        return await self._answer(request, seen)

    async def _vertex(self, request: web.Request) -> web.StreamResponse:
        seen = await self._record(request)
        if "x-goog-api-key" in request.headers or "key" in request.query:
            self.violations.append("a Vertex request carried an API key")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or token not in self.valid:
            return web.json_response(google("error_unauthenticated"), status=401)
        return await self._answer(request, seen)

    def _pick(self, seen: Seen, method: str) -> Queued:
        if self._queue:
            return self._queue.popleft()
        body = seen.body or {}
        contents = body.get("contents") or [{}]
        answered = any("functionResponse" in p for p in contents[-1].get("parts", []))
        tools = bool(body.get("tools")) and not answered
        if method == "streamGenerateContent":
            name = "stream_generate_content" + ("_function_call" if tools else "")
        elif method == "batchEmbedContents":
            name = "batch_embed_contents"
        elif method == "predict":
            name = "vertex_predict_embeddings"
        else:
            name = "generate_content" + ("_function_call" if tools else "")
        return Queued(name, 200, {})

    async def _answer(self, request: web.Request, seen: Seen) -> web.StreamResponse:
        _, _, method = request.match_info["call"].partition(":")
        choice = self._pick(seen, method)
        answer = google(choice.asset)
        credential = (
            request.headers.get("x-goog-api-key")
            or (request.headers.get("Authorization", "").partition(" ")[2])
        )
        if choice.message is not None and isinstance(answer, dict) and "error" in answer:
            answer["error"]["message"] = choice.message.format(token=credential)
        if choice.status != 200 or method != "streamGenerateContent":
            if method == "batchEmbedContents" and choice.status == 200:
                count = len(seen.body["requests"])
                answer["embeddings"] = (answer["embeddings"] * count)[:count]
            return web.json_response(answer, status=choice.status, headers=choice.headers)
        if request.query.get("alt") != "sse":
            self.violations.append("streamGenerateContent without alt=sse")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for index, event in enumerate(answer):
            await response.write(b"data: " + json.dumps(event).encode() + b"\r\n\r\n")
            if index == 0 and choice.stream_error is not None:
                text = choice.stream_error.format(token=credential)
                error = {"error": {"code": 500, "message": text, "status": "INTERNAL"}}
                await response.write(b"data: " + json.dumps(error).encode() + b"\r\n\r\n")
                break
        await response.write_eof()
        return response
