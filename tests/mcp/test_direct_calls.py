"""``tools/call`` answered on the gateway's direct path (gateway/api/mcp_calls.py, and
gateway/mcp/direct.py towards the upstream), told apart from the SDK's path by what each answers
with: JSON for a call taken directly, an SSE stream from the SDK's session. Raw HTTP against a
real gateway process and the tests' SDK upstream servers (tests/mcp/stack.py)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest

from tests.mcp.stack import Stack

pytestmark = pytest.mark.openbao

ACCEPT = "application/json, text/event-stream"


@pytest.fixture(scope="module")
def approved(stack: Stack) -> Stack:
    stack.approve("tools", "echo", "slow", "count")
    stack.approve("vaulted", "echo")
    return stack


class Raw:
    """An MCP session opened by hand: initialize, initialized, then JSON-RPC posts."""

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.client = httpx.Client(
            headers={"Authorization": f"Bearer {key}", "Accept": ACCEPT}, timeout=30
        )
        opened = self.client.post(
            url,
            json={
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "raw", "version": "1"},
                },
            },
        )
        assert opened.status_code == 200, opened.text
        self.session_id = opened.headers["mcp-session-id"]
        self.client.headers["mcp-session-id"] = self.session_id
        self.client.headers["mcp-protocol-version"] = "2025-11-25"
        done = self.client.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        assert done.status_code == 202, done.text

    def post(self, message: dict[str, Any], **headers: str) -> httpx.Response:
        return self.client.post(self.url, json=message, headers=headers)

    def __enter__(self) -> Raw:
        return self

    def __exit__(self, *_: object) -> None:
        self.client.close()


def answer_of(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC answer in a JSON body or in the last data line of an SSE stream."""
    if response.headers["content-type"].startswith("application/json"):
        found: dict[str, Any] = response.json()
        return found
    data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
    found = json.loads(data[-1])
    return found


def call(request_id: int, name: str, arguments: dict[str, Any], **meta: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name, "arguments": arguments}
    if meta:
        params["_meta"] = meta
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


def test_a_call_without_progress_is_answered_directly_in_json_as_the_sdks_path_answers_it(
    approved: Stack,
) -> None:
    key, _ = approved.key("tools.echo", "tools.count")
    with Raw(approved.mcp_url, key) as raw:
        direct = raw.post(call(1, "tools.echo", {"text": "same"}))
        relayed = raw.post(call(2, "tools.echo", {"text": "same"}, progressToken="p"))
        counted = raw.post(call(3, "tools.count", {"n": 2}, progressToken="q"))
    assert direct.status_code == 200
    assert direct.headers["content-type"] == "application/json"
    assert relayed.headers["content-type"].startswith("text/event-stream")
    assert answer_of(direct)["id"] == 1
    assert answer_of(direct)["result"] == answer_of(relayed)["result"]
    assert answer_of(direct)["result"]["content"] == [{"type": "text", "text": "same"}]
    progress = [line for line in counted.text.splitlines() if "notifications/progress" in line]
    assert len(progress) == 2  # the SDK's path relays the upstream's progress
    assert answer_of(counted)["result"]["content"][0]["text"] == "counted to 2"


def test_direct_calls_reuse_one_upstream_connection_though_it_answers_each_in_an_sse_stream(
    approved: Stack,
) -> None:
    # the tests' upstream answers a tools/call in an SSE stream, which the gateway's answer does
    # not wait the end of; a connection given back before its response ended would be closed.
    # Two keys, each within the stack's limit of 5 calls a minute.
    keys = [approved.key("tools.echo")[0] for _ in range(2)]
    answers = []
    with Raw(approved.mcp_url, keys[0]) as first, Raw(approved.mcp_url, keys[1]) as second:
        first.post(call(1, "tools.echo", {"text": "warm"}))
        before = len(approved.tools.control("GET", "seen")["peers"])
        for raw in (first, second):
            answers += [raw.post(call(i, "tools.echo", {"text": f"{i}"})) for i in range(2, 6)]
    texts = [answer_of(a)["result"]["content"][0]["text"] for a in answers]
    assert texts == list("2345") * 2
    ports = approved.tools.control("GET", "seen")["peers"][before:]
    assert len(ports) >= 8
    assert len(set(ports)) <= 2, ports  # one connection (another for the SDK session's listing)


def test_a_session_is_answered_directly_only_for_the_key_that_opened_it(approved: Stack) -> None:
    owner, _ = approved.key("tools.echo")
    other, other_id = approved.key("tools.echo")
    with Raw(approved.mcp_url, owner) as raw:
        stolen = httpx.post(
            approved.mcp_url,
            json=call(1, "tools.echo", {"text": "x"}),
            headers={
                "Authorization": f"Bearer {other}",
                "Accept": ACCEPT,
                "mcp-session-id": raw.session_id,
                "mcp-protocol-version": "2025-11-25",
            },
            timeout=30,
        )
        mine = raw.post(call(2, "tools.echo", {"text": "mine"}))
    assert stolen.status_code == 404  # as the SDK answers for a session that does not exist
    assert not [r for r in approved.audit() if r["actor"] == f"key:{other_id}"]
    assert answer_of(mine)["result"]["content"][0]["text"] == "mine"


@pytest.mark.parametrize(
    ("message", "headers"),
    [
        (call(1, "tools.echo", {"text": "x"}), {"mcp-protocol-version": "1999-01-01"}),
        (call(1, "tools.echo", {"text": "x"}), {"accept": "application/json"}),
        ({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"arguments": {}}}, {}),
    ],
)
def test_a_call_the_sdk_would_refuse_goes_to_the_sdk_and_is_refused_in_its_words(
    approved: Stack, message: dict[str, Any], headers: dict[str, str]
) -> None:
    key, key_id = approved.key("tools.echo")
    with Raw(approved.mcp_url, key) as raw:
        refused = raw.post(message, **headers)
    assert refused.status_code in (200, 400, 406), refused.text
    if refused.status_code == 200:
        assert "error" in answer_of(refused)  # a JSON-RPC error from the SDK's session
    assert not [
        r for r in approved.audit() if r["actor"] == f"key:{key_id}" and r["action"] == "mcp.call"
    ]


def test_a_direct_call_the_client_cancels_is_cancelled_upstream_and_answered(
    approved: Stack,
) -> None:
    key, key_id = approved.key("tools.slow")
    raw = Raw(approved.mcp_url, key)  # closed at the end
    before = approved.tools.control("GET", "seen")["cancelled"]
    answered: list[httpx.Response] = []
    waiting = threading.Thread(
        target=lambda: answered.append(raw.post(call(7, "tools.slow", {"seconds": 30})))
    )
    started = time.monotonic()
    waiting.start()
    time.sleep(1.0)
    notice = {
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": {"requestId": 7, "reason": "test"},
    }
    assert raw.post(notice).status_code == 202
    waiting.join(20)
    raw.client.close()
    assert answered and time.monotonic() - started < 20
    assert answer_of(answered[0])["error"]["code"] == -32800
    for _ in range(100):
        if approved.tools.control("GET", "seen")["cancelled"] > before:
            break
        time.sleep(0.1)
    assert approved.tools.control("GET", "seen")["cancelled"] == before + 1
    outcomes = [
        r["detail"]["outcome"]
        for r in approved.audit()
        if r["actor"] == f"key:{key_id}" and r["action"] == "mcp.call"
    ]
    assert outcomes == ["cancelled"]
