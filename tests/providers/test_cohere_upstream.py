"""A `cohere` deployment (API v2) through a running gateway with the openai and anthropic SDKs:
chat (tools, streaming), embed, and ``POST /v1/rerank`` in Cohere's shape, served by Cohere,
by Cohere Rerank on Bedrock (SigV4-verified) and by an OpenAI-compatible server that declares
rerank."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from tests.providers.conftest import COHERE_KEY
from tests.support.fake_native import FakeBedrock, FakeCohere
from tests.support.gateway_process import GatewayProcess

KEY_ID = "AKIA" + secrets.token_hex(8).upper()
SECRET = secrets.token_urlsafe(30)
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
]
DOCUMENTS = ["Paris is in France.", "Bananas are yellow.", "The Eiffel Tower is in Paris."]


@pytest.fixture(scope="module")
def gateway(
    cohere: FakeCohere, bedrock: FakeBedrock, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    workdir: Path = tmp_path_factory.mktemp("cohere")
    bedrock.allow(KEY_ID, SECRET)
    env = {
        "FAKE_COHERE_KEY": COHERE_KEY,
        "FAKE_AWS_PAIR": json.dumps({"AccessKeyId": KEY_ID, "SecretAccessKey": SECRET}),
    }
    config = f"""
deployments:
  - model: command
    provider: cohere
    upstream_model: command-a-03-2025
    base_url: {cohere.base_url}
    credential: env:FAKE_COHERE_KEY
    allow_private_network: true
  - model: embed
    provider: cohere
    upstream_model: embed-v4.0
    base_url: {cohere.base_url}
    credential: env:FAKE_COHERE_KEY
    allow_private_network: true
  - model: rerank
    provider: cohere
    upstream_model: rerank-v3.5
    base_url: {cohere.base_url}
    credential: env:FAKE_COHERE_KEY
    allow_private_network: true
  - model: rerank-bedrock
    provider: bedrock
    upstream_model: cohere.rerank-v3-5:0
    base_url: {bedrock.base_url}
    aws: {{region: us-east-1}}
    credential: env:FAKE_AWS_PAIR
    allow_private_network: true
  - model: rerank-local
    provider: openai_compatible
    upstream_model: bge-reranker
    base_url: {cohere.base_url}
    credential: env:FAKE_COHERE_KEY
    rerank: true
    allow_private_network: true
  - model: chat-local
    provider: openai_compatible
    base_url: {cohere.base_url}
    allow_private_network: true
router:
  retries: 0
verify:
  mode: "off"
governance:
  default_prices: {{input: "1", output: "2"}}
"""
    process = GatewayProcess(workdir, config, env=env).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def virtual_key(gateway: GatewayProcess) -> str:
    models = ["command", "embed", "rerank", "rerank-bedrock", "rerank-local", "chat-local"]
    made: str = gateway.create_key(models)["key"]
    return made


@pytest.fixture
def sdk(gateway: GatewayProcess, virtual_key: str, cohere: FakeCohere) -> Iterator[openai.OpenAI]:
    cohere.reset()
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=virtual_key, max_retries=0) as made:
        yield made


def rerank(gateway: GatewayProcess, key: str, **body: object) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/rerank",
        headers={"Authorization": f"Bearer {key}"},
        json=body,
        timeout=10,
    )


def test_chat_goes_out_as_a_v2_chat_call_with_cohere_parameter_names(
    sdk: openai.OpenAI, cohere: FakeCohere
) -> None:
    reply = sdk.chat.completions.create(
        model="command",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        top_p=0.5,
        stop="END",
        max_tokens=20,
    )
    assert reply.choices[0].message.content == "Hello from Cohere."
    assert reply.usage is not None and reply.usage.prompt_tokens == 13
    assert reply.usage.prompt_tokens_details.cached_tokens == 3  # type: ignore[union-attr]
    seen = cohere.requests[-1]
    assert seen.path == "/v2/chat" and seen.headers["Authorization"] == f"Bearer {COHERE_KEY}"
    assert seen.body["model"] == "command-a-03-2025"
    assert (seen.body["p"], seen.body["stop_sequences"], seen.body["max_tokens"]) == (
        0.5,
        ["END"],
        20,
    )


def test_tool_call_and_tool_result_round_trip_through_cohere(
    sdk: openai.OpenAI, cohere: FakeCohere
) -> None:
    messages: list[dict[str, object]] = [{"role": "user", "content": "weather in Paris?"}]
    first = sdk.chat.completions.create(
        model="command",
        messages=messages,
        tools=TOOLS,
        tool_choice="required",  # type: ignore[arg-type]
    )
    assert first.choices[0].finish_reason == "tool_calls"
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    assert cohere.requests[-1].body["tool_choice"] == "REQUIRED"
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    sdk.chat.completions.create(model="command", messages=messages, tools=TOOLS)  # type: ignore[arg-type]
    sent = cohere.requests[-1].body["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.id
    assert sent[2] == {"role": "tool", "tool_call_id": call.id, "content": "sunny"}


def test_stream_text_and_tool_calls_become_openai_chunks(sdk: openai.OpenAI) -> None:
    chunks = list(
        sdk.chat.completions.create(
            model="command",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Hello from Cohere."
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 7
    tools = list(
        sdk.chat.completions.create(
            model="command",
            messages=[{"role": "user", "content": "weather?"}],
            tools=TOOLS,  # type: ignore[arg-type]
            stream=True,
        )
    )
    calls = [t for c in tools if c.choices for t in c.choices[0].delta.tool_calls or []]
    arguments = "".join(t.function.arguments or "" for t in calls)  # type: ignore[union-attr]
    assert calls[0].function.name == "get_weather" and json.loads(arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    assert [c.choices[0].finish_reason for c in tools if c.choices][-1] == "tool_calls"


def test_anthropic_sdk_through_cohere(gateway: GatewayProcess, virtual_key: str) -> None:
    client = anthropic.Anthropic(base_url=gateway.url, api_key=virtual_key, max_retries=0)
    message = client.messages.create(
        model="command", max_tokens=32, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.content[0].text == "Hello from Cohere."  # type: ignore[union-attr]
    with client.messages.stream(
        model="command", max_tokens=32, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        assert "".join(stream.text_stream) == "Hello from Cohere."


def test_embed_goes_out_as_v2_embed_with_float_vectors_back(
    sdk: openai.OpenAI, cohere: FakeCohere
) -> None:
    result = sdk.embeddings.create(model="embed", input=["first text", "second text"])
    assert [d.embedding for d in result.data] == [[0.25, -0.5, 0.125], [0.5, 0.25, -0.125]]
    assert result.usage.prompt_tokens == 4
    assert cohere.requests[-1].body == {
        "model": "embed-v4.0",
        "texts": ["first text", "second text"],
        "input_type": "search_document",
        "embedding_types": ["float"],
    }


def test_cohere_errors_map_to_429_with_retry_after_and_to_the_context_length_code(
    sdk: openai.OpenAI, cohere: FakeCohere
) -> None:
    cohere.then(error="error_throttling", headers={"Retry-After": "7"})
    with pytest.raises(openai.RateLimitError) as limited:
        sdk.chat.completions.create(model="command", messages=[{"role": "user", "content": "hi"}])
    assert limited.value.response.headers["retry-after"] == "7"
    cohere.then(error="error_too_long")
    with pytest.raises(openai.BadRequestError) as long:
        sdk.chat.completions.create(model="command", messages=[{"role": "user", "content": "hi"}])
    assert long.value.code == "context_length_exceeded"


def test_rerank_served_by_cohere_in_cohere_shape(
    gateway: GatewayProcess, virtual_key: str, cohere: FakeCohere
) -> None:
    cohere.reset()
    answer = rerank(
        gateway,
        virtual_key,
        model="rerank",
        query="Paris?",
        documents=DOCUMENTS,
        top_n=2,
        return_documents=True,
    )
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [(r["index"], r["relevance_score"]) for r in results] == [(2, 0.91), (0, 0.33)]
    assert results[0]["document"] == {"text": DOCUMENTS[2]}
    assert answer.json()["meta"]["billed_units"] == {"search_units": 1}
    seen = cohere.requests[-1]
    assert seen.path == "/v2/rerank"
    assert seen.body == {
        "model": "rerank-v3.5",
        "query": "Paris?",
        "documents": DOCUMENTS,
        "top_n": 2,
    }


def test_rerank_served_by_cohere_on_bedrock_signed_and_verified(
    gateway: GatewayProcess, virtual_key: str, bedrock: FakeBedrock
) -> None:
    bedrock.reset()
    answer = rerank(
        gateway, virtual_key, model="rerank-bedrock", query="Paris?", documents=DOCUMENTS
    )
    assert answer.status_code == 200, answer.text
    assert [r["index"] for r in answer.json()["results"]] == [2, 0]
    assert bedrock.requests[-1].path == "/model/cohere.rerank-v3-5%3A0/invoke"
    assert bedrock.requests[-1].body == {
        "query": "Paris?",
        "documents": DOCUMENTS,
        "api_version": 2,
    }
    assert bedrock.verified == [KEY_ID]


def test_rerank_served_by_an_openai_compatible_server_that_declares_it(
    gateway: GatewayProcess, virtual_key: str, cohere: FakeCohere
) -> None:
    cohere.reset()
    answer = rerank(gateway, virtual_key, model="rerank-local", query="Paris?", documents=DOCUMENTS)
    assert answer.status_code == 200, answer.text
    assert cohere.requests[-1].path == "/rerank"
    assert cohere.requests[-1].body["model"] == "bge-reranker"


def test_rerank_on_a_deployment_that_does_not_declare_it_is_a_clear_400(
    gateway: GatewayProcess, virtual_key: str, cohere: FakeCohere
) -> None:
    cohere.reset()
    answer = rerank(gateway, virtual_key, model="chat-local", query="q", documents=["d"])
    assert answer.status_code == 400
    assert "does not serve rerank" in answer.json()["error"]["message"]
    assert cohere.requests == []


def test_a_malformed_rerank_body_is_refused_naming_the_field(
    gateway: GatewayProcess, virtual_key: str
) -> None:
    answer = rerank(gateway, virtual_key, model="rerank", query="q", documents=[1, 2])
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "documents"
    answer = rerank(gateway, virtual_key, model="rerank", query="q", documents=["d"], rank_by="x")
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "rank_by"
