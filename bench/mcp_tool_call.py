"""What the MCP gateway adds to a tool call: the median of a proxied ``tools/call`` (the official
``mcp`` SDK's client -> Sealgate's /mcp -> the upstream MCP server) against the same call made
directly to the upstream, on open sessions, all on loopback.

Starts the tests' upstream MCP server (tests/mcp/upstream_server.py, the SDK's ``MCPServer``
under uvicorn) and a gateway process (``sealgate serve``: auth, approvals, allowlists, the
per-key rate limit and the audit row of every call all on), approves ``echo`` and grants it to
a fresh key, then times sequential calls in interleaved rounds (direct, proxied, direct, ...),
so drifts in the machine's load hit all alike. Beside them, the floor (``bench.mcp_floor``): a
bare proxy on the same SDK with none of Sealgate's checks, so the SDK's own cost of the two
extra hops is told apart from Sealgate's. With ``--baseline DIR``, a second gateway from another
source tree (a checkout of an earlier commit) in the same rounds, so a change is measured side by
side with what it replaces. Prints the medians (and the range of the rounds' medians), the
differences, each gateway process's CPU time per call (read from /proc: what the machine's load
hardly moves, where the latency moves with it) and the load average before and after.

    .venv-dev/bin/python -m bench.mcp_tool_call [--calls 300] [--rounds 5] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from mcp import ClientSession

from bench.cpu import tree_cpu_seconds
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


@dataclass
class Way:
    """One way of making the call: its session, the tool's name there, and what was measured."""

    label: str
    client: ClientSession
    tool: str
    pid: int | None = None  # the gateway process whose CPU time is read
    took: list[float] = field(default_factory=list)
    medians: list[float] = field(default_factory=list)  # of each round
    cpu: float = 0.0  # seconds of the process, over all rounds

    async def round(self, calls: int) -> None:
        before = tree_cpu_seconds(self.pid) if self.pid is not None else 0.0
        took = await timed(self.client, self.tool, calls)
        if self.pid is not None:
            self.cpu += tree_cpu_seconds(self.pid) - before
        self.took += took
        self.medians.append(statistics.median(took))


async def measure(
    upstream: UpstreamMcp,
    floor: str,
    gateways: list[tuple[str, GatewayProcess, str]],
    calls: int,
    rounds: int,
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        ways = [
            Way(
                "direct to the upstream",
                await stack.enter_async_context(session(upstream.url, "unused")),
                "echo",
            ),
            Way(
                "through a bare SDK proxy (floor)",
                await stack.enter_async_context(session(floor, "unused")),
                "echo",
            ),
        ]
        for label, gateway, key in gateways:
            client = await stack.enter_async_context(session(gateway.url + "/mcp", key))
            assert gateway.process is not None
            ways.append(Way(label, client, "tools.echo", gateway.process.pid))
        for way in ways:
            await timed(way.client, way.tool, 20)  # warm-up: connections, caches
        for _ in range(rounds):
            for way in ways:
                await way.round(calls)
    direct = statistics.median(ways[0].took) * 1e3
    print(f"tools/call, {rounds} rounds x {calls} sequential calls each way, open sessions:")
    for way in ways:
        median = statistics.median(way.took) * 1e3
        low, high = min(way.medians) * 1e3, max(way.medians) * 1e3
        added = f"  (+{median - direct:.3f} ms)" if way is not ways[0] else ""
        cpu = f", {way.cpu / (rounds * calls) * 1e6:.0f} us CPU/call" if way.pid else ""
        print(
            f"  {way.label + ':':34} median {median:.3f} ms{added}"
            f"  [rounds {low:.3f} to {high:.3f}]{cpu}"
        )
    for way in ways[2:]:
        over = statistics.median(way.took) * 1e3 - direct
        each = [(m - d) * 1e3 for m, d in zip(way.medians, ways[0].medians, strict=True)]
        print(
            f"  added by {way.label} over direct: {over:.3f} ms (target: at most 1 ms); "
            f"round by round {min(each):+.3f} to {max(each):+.3f} ms"
        )


def ready(gateway: GatewayProcess) -> str:
    """Approve ``echo``, grant it to a fresh key; that key."""
    offered = gateway.admin("GET", "/admin/mcp/servers/tools/tools").json()["data"]
    digest = next(t["digest"] for t in offered if t["tool"] == "echo")
    body = {"server": "tools", "tool": "echo", "digest": digest}
    assert gateway.admin("POST", "/admin/mcp/approvals", json=body).status_code == 201
    created = gateway.create_key(["mock-gpt"])
    path = f"/admin/mcp/grants/keys/{created['id']}"
    assert gateway.admin("PUT", path, json={"tools": ["tools.echo"]}).status_code == 200
    key: str = created["key"]
    return key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="another Sealgate source tree, side by side")
    args = parser.parse_args()
    gateway_process.STARTUP_SECONDS = 180.0  # a loaded machine starts slowly; the timing is after
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        upstream = UpstreamMcp(Path(tmp)).start()
        config = CONFIG.format(url=upstream.url)
        gateways = [("Sealgate /mcp", GatewayProcess(Path(tmp) / "gateway", config))]
        if args.baseline is not None:
            # `python -m gateway` finds the baseline tree's package first on PYTHONPATH
            env = {"PYTHONPATH": str(args.baseline.resolve())}
            baseline = GatewayProcess(Path(tmp) / "baseline", config, env=env)
            gateways.insert(0, (f"Sealgate at {args.baseline}", baseline))
        floor_port = free_port()
        command = [sys.executable, "-m", "bench.mcp_floor", str(floor_port), upstream.url]
        floor = subprocess.Popen(command)
        try:
            for _, gateway in gateways:
                gateway.start()
            keyed = [(label, gateway, ready(gateway)) for label, gateway in gateways]
            floor_url = f"http://127.0.0.1:{floor_port}/"
            asyncio.run(measure(upstream, floor_url, keyed, args.calls, args.rounds))
        finally:
            floor.terminate()
            floor.wait(10)
            for _, gateway in gateways:
                gateway.stop()
            upstream.stop()
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
