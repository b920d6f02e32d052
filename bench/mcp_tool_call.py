"""What the MCP gateway adds to a tool call: the median of a proxied ``tools/call`` (the official
``mcp`` SDK's client -> Sealgate's /mcp -> the upstream MCP server) against the same call made
directly to the upstream, on open sessions, all on loopback.

Starts the tests' upstream MCP server (tests/mcp/upstream_server.py, the SDK's ``MCPServer``
under uvicorn) and a gateway process (``sealgate serve``: auth, approvals, allowlists, the
per-key rate limit and the audit row of every call all on), approves ``echo`` and grants it to
a fresh key, then times sequential calls in interleaved rounds (direct, proxied, direct, ...),
so drifts in the machine's load hit all alike. Beside them, the floor (``bench.mcp_floor``): a
bare proxy on the same SDK with none of Sealgate's checks, so the SDK's own cost of the two
extra hops is told apart from Sealgate's. Prints the medians, the differences and the load
average before and after.

    .venv-dev/bin/python -m bench.mcp_tool_call [--calls 300] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mcp import ClientSession

from tests.mcp.stack import UpstreamMcp, session
from tests.support import gateway_process
from tests.support.gateway_process import GatewayProcess, free_port

CONFIG = """
deployments:
  - model: mock-gpt
    provider: mock
verify:
  mode: "off"
logging:
  level: warning
mcp:
  servers:
    - name: tools
      url: {url}
      allow_private_network: true
  calls_per_minute_per_key: 1000000000
"""


async def timed(client: ClientSession, name: str, calls: int) -> list[float]:
    took = []
    for i in range(calls):
        started = time.perf_counter()
        await client.call_tool(name, {"text": f"call {i}"})
        took.append(time.perf_counter() - started)
    return took


async def measure(
    upstream: UpstreamMcp, floor: str, gateway: str, key: str, calls: int, rounds: int
) -> None:
    direct: list[float] = []
    floored: list[float] = []
    proxied: list[float] = []
    async with (
        session(upstream.url, "unused") as straight,
        session(floor, "unused") as bare,
        session(gateway + "/mcp", key) as through,
    ):
        await timed(straight, "echo", 20)  # warm-up: connections, caches
        await timed(bare, "echo", 20)
        await timed(through, "tools.echo", 20)
        for _ in range(rounds):
            direct += await timed(straight, "echo", calls)
            floored += await timed(bare, "echo", calls)
            proxied += await timed(through, "tools.echo", calls)
    d, f, p = (statistics.median(x) * 1e3 for x in (direct, floored, proxied))
    print(f"tools/call, {rounds} rounds x {calls} sequential calls each way, open sessions:")
    print(f"  direct to the upstream:          median {d:.3f} ms")
    print(f"  through a bare SDK proxy (floor): median {f:.3f} ms  (+{f - d:.3f} ms)")
    print(f"  through Sealgate /mcp:           median {p:.3f} ms  (+{p - d:.3f} ms)")
    print(f"  added by Sealgate over direct:   {p - d:.3f} ms at the median (target: at most 1 ms)")
    print(f"  added by Sealgate over the floor: {p - f:.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    gateway_process.STARTUP_SECONDS = 180.0  # a loaded machine starts slowly; the timing is after
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        upstream = UpstreamMcp(Path(tmp)).start()
        gateway = GatewayProcess(Path(tmp) / "gateway", CONFIG.format(url=upstream.url))
        floor_port = free_port()
        command = [sys.executable, "-m", "bench.mcp_floor", str(floor_port), upstream.url]
        floor = subprocess.Popen(command)
        try:
            gateway.start()
            offered = gateway.admin("GET", "/admin/mcp/servers/tools/tools").json()["data"]
            digest = next(t["digest"] for t in offered if t["tool"] == "echo")
            body = {"server": "tools", "tool": "echo", "digest": digest}
            assert gateway.admin("POST", "/admin/mcp/approvals", json=body).status_code == 201
            created = gateway.create_key(["mock-gpt"])
            grant = {"tools": ["tools.echo"]}
            path = f"/admin/mcp/grants/keys/{created['id']}"
            assert gateway.admin("PUT", path, json=grant).status_code == 200
            floor_url = f"http://127.0.0.1:{floor_port}/"
            asyncio.run(
                measure(upstream, floor_url, gateway.url, created["key"], args.calls, args.rounds)
            )
        finally:
            floor.terminate()
            floor.wait(10)
            gateway.stop()
            upstream.stop()
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
