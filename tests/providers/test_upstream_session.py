"""What the pooled upstream session puts on the wire for an OpenAI-compatible call
(gateway/providers/pool.py, http.py): the gateway's own User-Agent and never aiohttp's, no
cookie, and the credential in the Authorization header only. Against a loopback server that
records the raw request headers, duplicates included."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from multidict import CIMultiDictProxy

from gateway.config import Deployment
from gateway.providers.openai import OpenAIAdapter
from gateway.providers.pool import UpstreamPool
from gateway.providers.registry import PROVIDERS
from gateway.secrets.secret import Secret

pytestmark = pytest.mark.anyio

KEY = "sk-upstream-session-test"
REPLY = {"id": "c", "object": "chat.completion", "choices": [], "usage": None}


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[str, list[CIMultiDictProxy[str]]]]:
    seen: list[CIMultiDictProxy[str]] = []

    async def chat(request: web.Request) -> web.Response:
        seen.append(request.headers)
        await request.read()
        # a cookie the gateway must not keep or send back
        return web.json_response(REPLY, headers={"Set-Cookie": "session=upstream; Path=/"})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/v1", seen
    await runner.cleanup()


async def test_an_upstream_call_sends_the_gateways_user_agent_once_and_no_cookie(
    upstream: tuple[str, list[CIMultiDictProxy[str]]],
) -> None:
    base, seen = upstream
    deployment = Deployment.model_validate(
        {
            "model": "m",
            "provider": "openai_compatible",
            "base_url": base,
            "allow_private_network": True,
        },
        context={"providers": PROVIDERS},
    )
    pool = UpstreamPool()
    adapter = OpenAIAdapter(deployment, pool)
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    try:
        for _ in range(2):  # the second call would carry a cookie kept from the first
            reply = await adapter.chat(body, Secret(KEY))
            assert json.loads(reply.body) == REPLY
    finally:
        await pool.close()
    assert len(seen) == 2
    for headers in seen:
        assert headers.getall("User-Agent") == ["sealgate"]
        assert "Cookie" not in headers
        assert headers.getall("Authorization") == ["Bearer " + KEY]
        others = [v for k, v in headers.items() if k.lower() != "authorization"]
        assert not any(KEY in value for value in others)
