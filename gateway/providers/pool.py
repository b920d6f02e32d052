"""Pooled HTTP clients to the upstreams: one aiohttp session per deployment.

aiohttp rather than httpx on this path because it is measured faster at the concurrency a gateway
sees (bench/ compares both). Every session: keep-alive pool of ``pool_size`` connections, the
deployment's connect/read/total timeouts (there is no "no timeout"), no proxies or .netrc from the
environment, no cookies; every call sets ``allow_redirects=False`` so a credential is never carried
to another host; names resolve through the deployment's egress guard (``egress.py``).
"""

from __future__ import annotations

import aiohttp

from gateway.config import Deployment
from gateway.providers.egress import GuardedResolver, guarded_resolver

SIDE_POOL_SIZE = 4
# Merged into every request before aiohttp adds its automatic headers, so aiohttp's own
# User-Agent is never sent. No ``skip_auto_headers=("User-Agent",)`` on top: it sends nothing
# different and made aiohttp build and merge a skip list on every call (issue 23: about 2.4 us of
# the 11.6 us a request object took to build).
HEADERS = {"User-Agent": "sealgate"}


class UpstreamPool:
    def __init__(self) -> None:
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    def session(self, deployment: Deployment) -> aiohttp.ClientSession:
        session = self._sessions.get(deployment.name)
        if session is None or session.closed:
            session = self._sessions[deployment.name] = self._open(deployment)
        return session

    def _open(self, deployment: Deployment) -> aiohttp.ClientSession:
        t = deployment.timeouts
        connector = aiohttp.TCPConnector(
            limit=deployment.pool_size,
            limit_per_host=deployment.pool_size,
            ttl_dns_cache=60,
            keepalive_timeout=30,
            resolver=guarded_resolver(deployment),
        )
        return aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=t.total, sock_connect=t.connect, sock_read=t.read),
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            headers=HEADERS,
            raise_for_status=False,
        )

    def pinned(
        self, name: str, host: str, allow_private: bool, timeout: float
    ) -> aiohttp.ClientSession:
        """A small session for a deployment's side channel to another host (Bedrock's STS
        endpoint, for web identity): pinned to ``host`` by the egress guard, no proxies,
        cookies or redirects, closed with the pool."""
        key = f"{name}\x00{host}"
        session = self._sessions.get(key)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                limit=SIDE_POOL_SIZE, resolver=GuardedResolver(host, allow_private)
            )
            session = self._sessions[key] = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=timeout),
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                headers=HEADERS,
                raise_for_status=False,
            )
        return session

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()
