"""Issue 12: no server error on any input. Each input below made the gateway answer 500 (and log a
full traceback) before; each is now a 400 in the route's own error shape: OpenAI's for
/v1/chat/completions and /v1/embeddings, Anthropic's for /v1/messages. A caller without a valid
credential is answered 401 before its body is looked at, on the API and the admin routes alike.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.hardening.conftest import HI, new_key, post
from tests.support.gateway_process import GatewayProcess

CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
MESSAGES = "/v1/messages"


def deep(depth: int) -> bytes:
    return b'{"model": "mock-gpt", "messages": ' + b"[" * depth + b"]" * depth + b"}"


def assert_openai_400(response: Any) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"


def assert_anthropic_400(response: Any) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert set(body["error"]) == {"type", "message"}


def assert_400_in_route_shape(path: str, response: Any) -> None:
    if path == MESSAGES:
        assert_anthropic_400(response)
    else:
        assert_openai_400(response)


@pytest.mark.parametrize("path", [CHAT, EMBEDDINGS, MESSAGES])
@pytest.mark.parametrize("depth", [2000, 100_000])
def test_json_nested_thousands_deep_is_a_400_for_a_caller_with_a_key(
    gateway: GatewayProcess, key: str, path: str, depth: int
) -> None:
    assert_400_in_route_shape(path, post(gateway, path, deep(depth), key))


@pytest.mark.parametrize("path", [CHAT, EMBEDDINGS, MESSAGES])
def test_json_nested_thousands_deep_without_a_key_is_a_401(
    gateway: GatewayProcess, path: str
) -> None:
    response = post(gateway, path, deep(5000), None)
    assert response.status_code == 401


# A lone surrogate is valid JSON (an escape) but not Unicode; as raw bytes it is not UTF-8 either.
LONE = [b'"\\ud800"', b'"\\udfff x"', b'"a\\ud83d"', b'"\xed\xa0\x80"']


@pytest.mark.parametrize("text", LONE)
@pytest.mark.parametrize("model", ["fake-gpt", "fake-claude", "mock-gpt"])
def test_a_lone_surrogate_in_message_content_is_a_400(
    gateway: GatewayProcess, key: str, text: bytes, model: str
) -> None:
    body = b'{"model": "%s", "messages": [{"role": "user", "content": %s}]}' % (
        model.encode(),
        text,
    )
    assert_openai_400(post(gateway, CHAT, body, key))


@pytest.mark.parametrize("text", LONE)
def test_a_lone_surrogate_in_an_embedding_input_or_a_messages_block_is_a_400(
    gateway: GatewayProcess, key: str, text: bytes
) -> None:
    embedding = b'{"model": "mock-gpt", "input": [%s]}' % text
    assert_openai_400(post(gateway, EMBEDDINGS, embedding, key))
    message = (
        b'{"model": "mock-gpt", "max_tokens": 5, "messages": [{"role": "user", "content": '
        b'[{"type": "text", "text": %s}]}]}' % text
    )
    assert_anthropic_400(post(gateway, MESSAGES, message, key))


def test_a_surrogate_pair_written_as_escapes_is_still_accepted(
    gateway: GatewayProcess, key: str
) -> None:
    body = b'{"model": "mock-gpt", "messages": [{"role": "user", "content": "\\ud83d\\ude00"}]}'
    response = post(gateway, CHAT, body, key)
    assert response.status_code == 200, response.text
    assert "\U0001f600" in response.json()["choices"][0]["message"]["content"]


@pytest.mark.parametrize("block", [1, "text", None, [], True, 2.5])
@pytest.mark.parametrize("role", ["user", "assistant"])
def test_a_messages_content_block_that_is_not_an_object_is_a_400(
    gateway: GatewayProcess, key: str, block: Any, role: str
) -> None:
    body = {
        "model": "mock-gpt",
        "max_tokens": 5,
        "messages": [HI, {"role": role, "content": [block]}],
    }
    assert_anthropic_400(post(gateway, MESSAGES, body, key))


@pytest.mark.parametrize(
    "blocks",
    [
        [{"type": 5}],
        [{"type": "text", "text": 5}],
        [{"type": "tool_use", "id": "t", "name": 5, "input": {}}],
        [{"type": "tool_use", "id": "t", "name": "f", "input": 5}],
        [{"type": "tool_result", "tool_use_id": 5, "content": "x"}],
        [{"type": "tool_result", "tool_use_id": "t", "content": 5}],
        [{"type": "image", "source": 5}],
        [{"type": "image", "source": {"type": "base64", "media_type": 5, "data": "x"}}],
    ],
)
def test_a_messages_block_with_a_wrong_typed_field_is_a_400(
    gateway: GatewayProcess, key: str, blocks: list[Any]
) -> None:
    body = {"model": "mock-gpt", "max_tokens": 5, "messages": [{"role": "user", "content": blocks}]}
    assert_anthropic_400(post(gateway, MESSAGES, body, key))
    body["messages"] = [HI, {"role": "assistant", "content": blocks}]
    assert_anthropic_400(post(gateway, MESSAGES, body, key))


# Chat messages whose fields have the wrong type: the Anthropic translation and the mock used to
# iterate or index them as they came.
WRONG_MESSAGES: list[dict[str, Any]] = [
    {"role": "user", "content": 5},
    {"role": "user", "content": {"text": "hi"}},
    {"role": "user", "content": [{"type": "text", "text": 5}]},
    {"role": "user", "content": [{"type": "image_url", "image_url": 5}]},
    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": 5}}]},
    {"role": "system", "content": 5},
    {"role": "system", "content": [5]},
    {"role": "assistant", "content": 5},
    {"role": "assistant", "content": None, "tool_calls": 5},
    {"role": "assistant", "content": None, "tool_calls": [5]},
    {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "function": 5}]},
    {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "function": {"name": 5}}]},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": 5}}],
    },
    {"role": "tool", "tool_call_id": "c", "content": 5},
    {"role": "tool", "tool_call_id": 5, "content": "x"},
]


@pytest.mark.parametrize("message", WRONG_MESSAGES)
@pytest.mark.parametrize("model", ["fake-claude", "mock-gpt", "fake-gpt"])
@pytest.mark.parametrize("stream", [False, True])
def test_a_chat_message_with_a_wrong_typed_field_is_a_400(
    gateway: GatewayProcess, key: str, message: dict[str, Any], model: str, stream: bool
) -> None:
    body = {"model": model, "messages": [HI, message], "stream": stream}
    assert_openai_400(post(gateway, CHAT, body, key))


WRONG_TOOLS: list[dict[str, Any]] = [
    {"tools": [{"type": "function", "function": []}]},
    {"tools": [{"type": "function", "function": {}}]},
    {"tools": [{"type": "function", "function": {"name": 5}}]},
    {"tools": [{"type": "function", "function": {"name": "f", "parameters": 5}}]},
    {"tools": [5]},
    {"tool_choice": 5},
    {"tool_choice": {"type": "function", "function": 5}},
    {"stop": [5]},
    {"stop": {"x": 1}},
    {"response_format": {"type": 5}},
    {"logit_bias": 5},
    {"user": 5},
    {"metadata": 5},
]


@pytest.mark.parametrize("fields", WRONG_TOOLS)
@pytest.mark.parametrize("model", ["fake-claude", "mock-gpt", "fake-gpt"])
def test_a_chat_request_with_wrong_typed_tools_or_options_is_a_400(
    gateway: GatewayProcess, key: str, fields: dict[str, Any], model: str
) -> None:
    body = {"model": model, "messages": [HI], **fields}
    assert_openai_400(post(gateway, CHAT, body, key))


@pytest.mark.parametrize("name", ["max_tokens", "max_completion_tokens"])
@pytest.mark.parametrize("digits", [b"9" * 4299, b"9" * 19, b"%d" % 2**31])
def test_a_max_tokens_too_large_to_count_is_a_400_on_a_key_with_a_token_limit(
    gateway: GatewayProcess, name: str, digits: bytes
) -> None:
    limited, _ = new_key(gateway, tpm_limit=1000)
    body = (
        b'{"model": "mock-gpt", "n": 16, "%s": %s, '
        b'"messages": [{"role": "user", "content": "hi"}]}' % (name.encode(), digits)
    )
    response = post(gateway, CHAT, body, limited)
    assert_openai_400(response)
    error = response.json()["error"]
    assert error["param"] == name or "64 bits" in error["message"]


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_a_number_that_is_not_finite_is_a_400(
    gateway: GatewayProcess, key: str, number: bytes
) -> None:
    body = (
        b'{"model": "mock-gpt", "temperature": %s, "messages": [{"role": "user", "content": "hi"}]}'
    )
    assert_openai_400(post(gateway, CHAT, body % number, key))


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/admin/keys", {"models": 5}),
        ("/admin/keys", {"models": ["mock-gpt"], "colour": "red"}),
        ("/admin/teams", {"name": []}),
        ("/admin/budgets", {"scope": "nope"}),
        ("/admin/tokens", {}),
    ],
)
@pytest.mark.parametrize("credential", [None, "Bearer wrong", "Basic eA==", "Bearer sg-adm-x"])
def test_an_admin_route_without_a_valid_credential_is_a_401_whatever_the_body(
    gateway: GatewayProcess, path: str, body: Any, credential: str | None
) -> None:
    headers = {"Authorization": credential} if credential else {}
    for sent in (body, deep(3000), b"{not json"):
        response = post(gateway, path, sent, None, **headers)
        assert response.status_code == 401, response.text
        assert "colour" not in response.text and "models" not in response.text


@pytest.mark.parametrize("path", ["/admin/keys", "/admin/teams", "/admin/users"])
def test_an_admin_body_nested_thousands_deep_is_a_400(gateway: GatewayProcess, path: str) -> None:
    assert_openai_400(post(gateway, path, deep(3000), gateway.admin_key))


@pytest.mark.parametrize("text", LONE)
def test_a_lone_surrogate_in_an_admin_body_is_a_400(gateway: GatewayProcess, text: bytes) -> None:
    for path, body in (
        ("/admin/teams", b'{"name": %s}' % text),
        ("/admin/users", b'{"name": %s}' % text),
        ("/admin/keys", b'{"models": ["mock-gpt"], "metadata": {"project": %s}}' % text),
    ):
        assert_openai_400(post(gateway, path, body, gateway.admin_key))


def test_none_of_these_inputs_left_a_traceback_in_the_log(gateway: GatewayProcess) -> None:
    log = gateway.stderr()
    assert "Traceback" not in log
    assert "unexpected error" not in log
