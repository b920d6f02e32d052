"""The pass-through floor with an aiohttp client (one pooled ClientSession).

Run: BENCH_UPSTREAM_URL=... uvicorn bench.floor_aiohttp:app --loop uvloop --http httptools
"""

from __future__ import annotations

import aiohttp

from bench.floor import POOL_SIZE, UPSTREAM_TIMEOUT_S, make_app


class AiohttpForwarder:
    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        connector = aiohttp.TCPConnector(limit=POOL_SIZE, keepalive_timeout=60)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=UPSTREAM_TIMEOUT_S),
            auto_decompress=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
        assert self._session is not None, "lifespan startup did not run"
        async with self._session.post(
            url, data=body, headers=headers, allow_redirects=False
        ) as resp:
            payload = await resp.read()
            return resp.status, resp.headers.get("Content-Type", "application/json"), payload


app = make_app(AiohttpForwarder())
