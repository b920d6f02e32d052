"""The pass-through floor with an httpx client (one AsyncClient, pool sized like aiohttp's).

Run: BENCH_UPSTREAM_URL=... uvicorn bench.floor_httpx:app --loop uvloop --http httptools
"""

from __future__ import annotations

import httpx

from bench.floor import POOL_SIZE, UPSTREAM_TIMEOUT_S, make_app


class HttpxForwarder:
    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None

    async def open(self) -> None:
        self._client = httpx.AsyncClient(
            limits=httpx.Limits(
                max_connections=POOL_SIZE,
                max_keepalive_connections=POOL_SIZE,
                keepalive_expiry=60,
            ),
            timeout=httpx.Timeout(UPSTREAM_TIMEOUT_S),
            follow_redirects=False,
            trust_env=False,
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
        assert self._client is not None, "lifespan startup did not run"
        resp = await self._client.post(url, content=body, headers=headers)
        return resp.status_code, resp.headers.get("Content-Type", "application/json"), resp.content


app = make_app(HttpxForwarder())
