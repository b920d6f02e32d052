"""The trace exporter's collector goes through the egress rules a sink's receiver does: with
tracing on, a named collector must be on the signed allowlist under ``sink``, a private or
link-local literal needs ``tracing.allow_private_network``, and a loopback collector (the default
endpoint, an agent beside the gateway) needs neither. At connect time the exporter's blocking
connection goes only to an address the guard passed: a collector that resolves to a non-public
address is refused before any byte is sent."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.providers import egress
from gateway.tracing.export import Poster
from tests.observability.test_sink_egress import EGRESS, config, policies
from tests.support.gateway_process import GatewayProcess


def tracing(endpoint: str, *flags: str) -> str:
    extra = "".join(f", {flag}: true" for flag in flags)
    return f'\ntracing: {{enabled: true, endpoint: "{endpoint}"{extra}}}\n'


def test_a_collector_on_the_allowlist_passes_and_one_off_it_is_refused_naming_the_key(
    tmp_path: Path,
) -> None:
    allowed = policies(tmp_path, EGRESS)
    egress.enforce_tracing(
        config(tracing("https://otel.logs.example.org/v1/traces")).tracing, allowed
    )
    off = config(tracing("https://collector.elsewhere.example/v1/traces")).tracing
    with pytest.raises(ConfigError) as caught:
        egress.enforce_tracing(off, allowed)
    message = str(caught.value)
    assert "tracing.endpoint" in message and "egress.yaml" in message
    assert "host collector.elsewhere.example is not on the egress allowlist for sink" in message


@pytest.mark.parametrize("endpoint", ["http://10.1.2.3:4318/v1/traces", "http://169.254.169.254/"])
def test_a_private_or_link_local_collector_needs_allow_private_network(
    tmp_path: Path, endpoint: str
) -> None:
    empty = policies(tmp_path, "version: 1\nproviders: {}\n")
    with pytest.raises(ConfigError, match="allow_private_network"):
        egress.enforce_tracing(config(tracing(endpoint)).tracing, empty)
    egress.enforce_tracing(config(tracing(endpoint, "allow_private_network")).tracing, empty)


@pytest.mark.parametrize(
    "endpoint", ["http://127.0.0.1:4318/v1/traces", "http://localhost:4318/v1/traces"]
)
def test_a_loopback_collector_needs_no_entry_and_no_flag(tmp_path: Path, endpoint: str) -> None:
    empty = policies(tmp_path, "version: 1\nproviders: {}\n")
    egress.enforce_tracing(config(tracing(endpoint)).tracing, empty)


def test_tracing_off_checks_nothing(tmp_path: Path) -> None:
    text = '\ntracing: {enabled: false, endpoint: "https://anywhere.example/v1/traces"}\n'
    egress.enforce_tracing(config(text).tracing, policies(tmp_path, "version: 1\nproviders: {}\n"))


def test_the_connect_guard_passes_loopback_and_public_and_refuses_private_unless_allowed() -> None:
    assert egress.checked_address("127.0.0.1", 4318, False) == ("127.0.0.1", 4318)
    assert egress.checked_address("localhost", 4318, False)[0] in ("127.0.0.1", "::1")
    assert egress.checked_address("8.8.8.8", 443, False) == ("8.8.8.8", 443)  # resolved, no I/O
    for private in ("169.254.169.254", "10.1.2.3", "192.168.0.1"):
        with pytest.raises(egress.EgressRefused):
            egress.checked_address(private, 80, False)
        assert egress.checked_address(private, 80, True) == (private, 80)


def test_the_exporter_sends_nothing_to_a_collector_the_guard_refuses() -> None:
    """A listening socket stands for a collector the config names by a private address: the
    guard (told that address is not allowed) refuses, and the socket is never connected to."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.5)
        port = listener.getsockname()[1]
        asked: list[tuple[str, int]] = []

        def refuse(host: str, port: int) -> tuple[str, int]:
            asked.append((host, port))
            raise egress.EgressRefused("egress refused: non-public address")

        poster = Poster(f"http://127.0.0.1:{port}/v1/traces", {}, 1.0, refuse)
        with pytest.raises(OSError, match="EgressRefused"):
            poster.post(b"spans", 1.0)
        assert asked == [("127.0.0.1", port)]
        with pytest.raises(TimeoutError):
            listener.accept()

        accepted: list[bytes] = []

        def collector() -> None:
            connection, _ = listener.accept()
            with connection:
                accepted.append(connection.recv(65536))
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

        thread = threading.Thread(target=collector)
        thread.start()
        passed = Poster(f"http://127.0.0.1:{port}/v1/traces", {}, 2.0, lambda h, p: (h, p))
        assert passed.post(b"spans", 2.0) == 200
        passed.close()
        thread.join(5)
        assert accepted and accepted[0].startswith(b"POST /v1/traces HTTP/1.1")


def test_a_gateway_tracing_to_a_collector_off_the_allowlist_refuses_to_start(
    tmp_path: Path,
) -> None:
    directory = policies(tmp_path, EGRESS)
    text = (
        "deployments: [{model: gpt, provider: mock}]\n"
        f'verify: {{mode: "off", policies_dir: {directory}}}\n'
        + tracing("https://collector.elsewhere.example/v1/traces")
    )
    process = GatewayProcess(tmp_path / "gw", text).start(wait=False)
    assert process.wait_exit() != 0
    stderr = process.stderr()
    assert "tracing.endpoint" in stderr
    assert "collector.elsewhere.example is not on the egress allowlist for sink" in stderr
