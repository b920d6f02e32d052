"""Issue 12: what one client connection may hold is bounded before any route runs. Request headers
are limited in size and count (431), a request must finish its headers within
``header_timeout_seconds`` and its body within ``body_timeout_seconds`` (408), an idle connection
is closed after ``idle_timeout_seconds``, and no more than ``max_connections`` are open at once."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.hardening.conftest import config, raw_connection, read_until_closed, start
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

GET = b"GET /health/live HTTP/1.1\r\nHost: gateway\r\n"


def send_all(sock: socket.socket, data: bytes) -> None:
    """Send ``data``, stopping quietly when the server closes the connection under it."""
    try:
        view = memoryview(data)
        while view:
            sent = sock.send(view[:65536])
            view = view[sent:]
    except (BrokenPipeError, ConnectionResetError):
        pass


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:100]
    return int(answer[9:12])


@pytest.mark.parametrize("size", [128 * 1024, 4 * 1024 * 1024, 64 * 1024 * 1024])
def test_a_header_line_larger_than_the_limit_is_refused_with_431(
    gateway: GatewayProcess, size: int
) -> None:
    with raw_connection(gateway) as sock:
        send_all(sock, GET + b"X-Big: " + b"a" * size + b"\r\n\r\n")
        answer = read_until_closed(sock)
    assert status_of(answer) == 431
    assert b"request_header_too_large" in answer


def test_a_request_line_larger_than_the_limit_is_refused_with_431(gateway: GatewayProcess) -> None:
    with raw_connection(gateway) as sock:
        send_all(sock, b"GET /health/live?" + b"q" * (1024 * 1024) + b" HTTP/1.1\r\n\r\n")
        answer = read_until_closed(sock)
    assert status_of(answer) == 431


def test_more_headers_than_the_limit_is_refused_with_431(gateway: GatewayProcess) -> None:
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(1000))
    with raw_connection(gateway) as sock:
        send_all(sock, GET + many + b"\r\n")
        answer = read_until_closed(sock)
    assert status_of(answer) == 431
    assert b"too_many_headers" in answer


def test_headers_within_the_limits_are_served(gateway: GatewayProcess) -> None:
    headers = {f"X-H{i}": "v" for i in range(90)}
    headers["X-Big"] = "a" * 48 * 1024
    response = httpx.get(gateway.url + "/health/live", headers=headers, timeout=10)
    assert response.status_code == 200


def test_a_431_answer_does_not_leave_the_gateway_unable_to_serve(gateway: GatewayProcess) -> None:
    for _ in range(20):
        with raw_connection(gateway) as sock:
            send_all(sock, GET + b"X-Big: " + b"a" * (1024 * 1024) + b"\r\n\r\n")
            read_until_closed(sock)
    assert httpx.get(gateway.url + "/health/live", timeout=10).status_code == 200


TIGHT = """
server:
  header_timeout_seconds: 1
  body_timeout_seconds: 1
  idle_timeout_seconds: 1
  max_connections: 40
"""


@pytest.fixture(scope="module")
def tight(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    workdir: Path = tmp_path_factory.mktemp("tight")
    process = start(workdir, config(upstream_server, TIGHT))
    yield process
    process.stop()


def closes_within(sock: socket.socket, seconds: float, trickle: bytes = b"") -> tuple[float, bytes]:
    """Send ``trickle`` a byte every 0.2 s (nothing if empty) until the server closes the
    connection; how long that took and what it answered."""
    sock.settimeout(0.2)
    began = time.monotonic()
    answer = b""
    for byte in [trickle[i : i + 1] for i in range(len(trickle))] or [b""] * 1000:
        if time.monotonic() - began > seconds:
            break
        if byte:
            try:
                sock.send(byte)
            except (BrokenPipeError, ConnectionResetError):
                break
        try:
            piece = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            break
        if not piece:
            break
        answer += piece
    return time.monotonic() - began, answer


def test_a_client_that_sends_its_headers_slowly_is_cut_off_with_408(tight: GatewayProcess) -> None:
    with raw_connection(tight) as sock:
        took, answer = closes_within(sock, 10, trickle=GET + b"X-Slow: " + b"s" * 200)
    assert took < 5
    assert status_of(answer) == 408


def test_a_client_that_sends_its_body_slowly_is_cut_off_with_408(tight: GatewayProcess) -> None:
    key = tight.create_key(["mock-gpt"])["key"]
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + key.encode() + b"\r\nContent-Length: 500\r\n\r\n"
    )
    with raw_connection(tight) as sock:
        sock.sendall(head)
        took, answer = closes_within(sock, 10, trickle=b"{" + b" " * 400)
    assert took < 5
    assert status_of(answer) == 408


def test_a_connection_that_sends_nothing_is_closed_after_the_idle_timeout(
    tight: GatewayProcess,
) -> None:
    with raw_connection(tight) as sock:
        took, answer = closes_within(sock, 10)
    assert took < 5
    assert answer == b""


def test_a_kept_alive_connection_is_closed_after_the_idle_timeout(tight: GatewayProcess) -> None:
    with raw_connection(tight) as sock:
        sock.sendall(GET + b"\r\n")
        time.sleep(0.2)
        took, answer = closes_within(sock, 10)
    assert took < 5
    assert status_of(answer) == 200


def test_connections_beyond_the_limit_are_refused_and_the_gateway_serves_again_after(
    tight: GatewayProcess,
) -> None:
    time.sleep(1.5)  # the other tests' connections are gone
    held = [raw_connection(tight) for _ in range(40)]
    try:
        time.sleep(0.3)
        with raw_connection(tight) as extra:
            extra.settimeout(5)
            answer = read_until_closed(extra)
        assert status_of(answer) == 503
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)
    assert httpx.get(tight.url + "/health/live", timeout=10).status_code == 200


def test_a_slowloris_of_many_connections_is_shed_and_health_answers_after(
    tight: GatewayProcess,
) -> None:
    time.sleep(1.5)
    held = [raw_connection(tight) for _ in range(30)]
    try:
        for sock in held:
            sock.sendall(GET[:10])
        time.sleep(2.5)  # past header_timeout_seconds: every one of them was cut off
        for sock in held:
            sock.settimeout(1)
            assert status_of(read_until_closed(sock)) == 408
        assert httpx.get(tight.url + "/health/live", timeout=10).status_code == 200
    finally:
        for sock in held:
            sock.close()
