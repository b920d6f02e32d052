"""A `bedrock` deployment through a running gateway, called with the official openai and
anthropic SDKs: Converse and ConverseStream on the way out, each request SigV4-signed and the
signature recomputed and compared by the fake Bedrock with botocore; the access key pair comes
by reference (``file:``) and is fetched again once when Bedrock refuses it."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from tests.support.fake_native import FakeBedrock
from tests.support.gateway_process import GatewayProcess

KEY_ID = "AKIA" + secrets.token_hex(8).upper()
SECRET = secrets.token_urlsafe(30)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "the weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("aws") / "bedrock.json"
    path.write_text(json.dumps({"access_key_id": KEY_ID, "secret_access_key": SECRET}))
    return path


@pytest.fixture(scope="module")
def gateway(
    bedrock: FakeBedrock, key_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    bedrock.allow(KEY_ID, SECRET)
    config = f"""
deployments:
  - model: claude-bedrock
    provider: bedrock
    upstream_model: anthropic.claude-3-5-sonnet-20240620-v1:0
    base_url: {bedrock.base_url}
    aws: {{region: us-east-1}}
    credential: file:{key_file}
    allow_private_network: true
  - model: titan-embed
    provider: bedrock
    upstream_model: amazon.titan-embed-text-v2:0
    base_url: {bedrock.base_url}
    aws: {{region: us-east-1}}
    credential: file:{key_file}
    allow_private_network: true
  - model: cohere-embed-bedrock
    provider: bedrock
    upstream_model: cohere.embed-english-v3
    base_url: {bedrock.base_url}
    aws: {{region: us-east-1}}
    credential: file:{key_file}
    allow_private_network: true
router:
  retries: 0
verify:
  mode: "off"
governance:
  deployments:
    claude-bedrock/bedrock: {{prices: {{input: "3", cached_input: "0.30", output: "15"}}}}
    titan-embed/bedrock: {{prices: {{input: "0.02"}}}}
    cohere-embed-bedrock/bedrock: {{prices: {{input: "0.1"}}}}
"""
    process = GatewayProcess(tmp_path_factory.mktemp("bedrock"), config).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def virtual_key(gateway: GatewayProcess) -> str:
    made: str = gateway.create_key(["claude-bedrock", "titan-embed", "cohere-embed-bedrock"])["key"]
    return made


@pytest.fixture
def sdk(gateway: GatewayProcess, virtual_key: str, bedrock: FakeBedrock) -> Iterator[openai.OpenAI]:
    bedrock.reset()
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=virtual_key, max_retries=0) as made:
        yield made


def test_chat_goes_out_as_a_signed_converse_call_that_botocore_verifies(
    sdk: openai.OpenAI, bedrock: FakeBedrock
) -> None:
    reply = sdk.chat.completions.create(
        model="claude-bedrock",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        max_tokens=50,
        temperature=0.5,
        top_p=0.9,
        stop=["END"],
    )
    assert reply.choices[0].message.content == "Hello from Bedrock."
    assert reply.choices[0].finish_reason == "stop"
    seen = bedrock.requests[-1]
    assert seen.path == "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    assert bedrock.verified == [KEY_ID] and bedrock.refused == []
    assert seen.body["system"] == [{"text": "be brief"}]
    assert seen.body["messages"] == [{"role": "user", "content": [{"text": "hi"}]}]
    assert seen.body["inferenceConfig"] == {
        "maxTokens": 50,
        "temperature": 0.5,
        "topP": 0.9,
        "stopSequences": ["END"],
    }
    assert SECRET not in json.dumps(seen.headers) and "model" not in seen.body


def test_usage_counts_cache_reads_and_writes_as_prompt_tokens_with_reads_cached(
    sdk: openai.OpenAI,
) -> None:
    reply = sdk.chat.completions.create(
        model="claude-bedrock", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (13, 7)
    assert reply.usage.prompt_tokens_details is not None
    assert reply.usage.prompt_tokens_details.cached_tokens == 4


def test_a_fake_that_knows_another_secret_refuses_the_signature(
    sdk: openai.OpenAI, bedrock: FakeBedrock
) -> None:
    """The verification is a real check: with the fake's secret for this key changed, the
    gateway's signature no longer matches, the gateway fetches the key again once, and
    answers 502."""
    bedrock.allow(KEY_ID, SECRET + "x")
    try:
        with pytest.raises(openai.APIStatusError) as raised:
            sdk.chat.completions.create(
                model="claude-bedrock", messages=[{"role": "user", "content": "hi"}]
            )
    finally:
        bedrock.allow(KEY_ID, SECRET)
    assert raised.value.status_code == 502
    assert bedrock.refused == ["signature mismatch", "signature mismatch"]  # refetched once


def test_tools_images_and_tool_results_round_trip_through_converse(
    sdk: openai.OpenAI, bedrock: FakeBedrock
) -> None:
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    messages: list[dict[str, object]] = [
        {"role": "user", "content": [{"type": "text", "text": "weather here?"}, image]}
    ]
    first = sdk.chat.completions.create(
        model="claude-bedrock",
        messages=messages,
        tools=TOOLS,
        tool_choice="required",  # type: ignore[arg-type]
    )
    assert first.choices[0].finish_reason == "tool_calls"
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    sent = bedrock.requests[-1].body
    assert sent["messages"][0]["content"][1] == {
        "image": {"format": "png", "source": {"bytes": PNG}}
    }
    assert sent["toolConfig"]["toolChoice"] == {"any": {}}
    assert sent["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"]["type"] == "object"
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    sdk.chat.completions.create(model="claude-bedrock", messages=messages, tools=TOOLS)  # type: ignore[arg-type]
    turns = bedrock.requests[-1].body["messages"]
    assert turns[1]["content"][-1] == {
        "toolUse": {"toolUseId": call.id, "name": "get_weather", "input": {"city": "Paris"}}
    }
    assert turns[2] == {
        "role": "user",
        "content": [{"toolResult": {"toolUseId": call.id, "content": [{"text": "sunny"}]}}],
    }


def test_stream_is_decoded_from_event_stream_frames_into_openai_chunks_with_usage(
    sdk: openai.OpenAI, bedrock: FakeBedrock
) -> None:
    chunks = list(
        sdk.chat.completions.create(
            model="claude-bedrock",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from Bedrock."
    assert bedrock.requests[-1].path.endswith("/converse-stream")
    assert bedrock.verified == [KEY_ID]
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 13


def test_streamed_tool_call_arrives_as_openai_tool_call_deltas(sdk: openai.OpenAI) -> None:
    chunks = list(
        sdk.chat.completions.create(
            model="claude-bedrock",
            messages=[{"role": "user", "content": "weather?"}],
            tools=TOOLS,  # type: ignore[arg-type]
            stream=True,
        )
    )
    calls = [t for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or []]
    assert calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    arguments = "".join(t.function.arguments or "" for t in calls)  # type: ignore[union-attr]
    assert json.loads(arguments) == {"city": "Paris"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_throttling_becomes_429_with_retry_after(sdk: openai.OpenAI, bedrock: FakeBedrock) -> None:
    bedrock.then(error="error_throttling")
    with pytest.raises(openai.RateLimitError) as raised:
        sdk.chat.completions.create(
            model="claude-bedrock", messages=[{"role": "user", "content": "hi"}]
        )
    assert raised.value.response.headers["retry-after"] == "1"


def test_input_too_long_becomes_the_context_length_code_routing_falls_back_on(
    sdk: openai.OpenAI, bedrock: FakeBedrock
) -> None:
    bedrock.then(error="error_too_long")
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.chat.completions.create(
            model="claude-bedrock", messages=[{"role": "user", "content": "hi"}]
        )
    assert raised.value.code == "context_length_exceeded"


def test_a_guardrail_stop_is_the_content_filter_finish_reason(
    sdk: openai.OpenAI, bedrock: FakeBedrock
) -> None:
    bedrock.then(reply="converse_guardrail")
    reply = sdk.chat.completions.create(
        model="claude-bedrock", messages=[{"role": "user", "content": "something unsafe"}]
    )
    assert reply.choices[0].finish_reason == "content_filter"


def test_a_stream_exception_ends_the_stream_with_an_error_event_not_the_upstream_message(
    gateway: GatewayProcess, virtual_key: str, bedrock: FakeBedrock
) -> None:
    bedrock.then(stream_exception=True, planted="PLANTED-UPSTREAM-TEXT")
    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {virtual_key}"},
        json={
            "model": "claude-bedrock",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
        },
        timeout=10,
    ) as response:
        body = response.read().decode()
    assert response.status_code == 200
    assert "event: error" in body and "rate_limit_exceeded" in body
    assert "PLANTED-UPSTREAM-TEXT" not in body and "[DONE]" not in body


def test_unsupported_openai_parameter_is_refused_not_dropped(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.chat.completions.create(
            model="claude-bedrock", messages=[{"role": "user", "content": "hi"}], seed=7
        )
    assert raised.value.code == "unsupported_parameter"


def test_anthropic_sdk_through_bedrock_json_and_streaming(
    gateway: GatewayProcess, virtual_key: str, bedrock: FakeBedrock
) -> None:
    client = anthropic.Anthropic(base_url=gateway.url, api_key=virtual_key, max_retries=0)
    message = client.messages.create(
        model="claude-bedrock",
        max_tokens=64,
        system="be brief",
        messages=[{"role": "user", "content": "hi"}],
    )
    assert message.content[0].text == "Hello from Bedrock."  # type: ignore[union-attr]
    assert bedrock.requests[-1].body["system"] == [{"text": "be brief"}]
    with client.messages.stream(
        model="claude-bedrock", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
    assert text == "Hello from Bedrock."
    assert bedrock.refused == []


def test_titan_embeddings_one_invoke_per_text_and_token_counts_summed(
    sdk: openai.OpenAI, bedrock: FakeBedrock
) -> None:
    result = sdk.embeddings.create(model="titan-embed", input=["first", "second"])
    assert [d.embedding for d in result.data] == [[0.015625, -0.03125, 0.0625]] * 2
    assert result.usage.prompt_tokens == 10
    paths = {r.path for r in bedrock.requests}
    assert paths == {"/model/amazon.titan-embed-text-v2%3A0/invoke"}
    assert sorted(r.body["inputText"] for r in bedrock.requests) == ["first", "second"]
    assert bedrock.verified == [KEY_ID, KEY_ID]


def test_cohere_embeddings_on_bedrock_in_one_invoke(
    sdk: openai.OpenAI, bedrock: FakeBedrock
) -> None:
    result = sdk.embeddings.create(
        model="cohere-embed-bedrock", input=["first text", "second text"]
    )
    assert len(result.data) == 2 and result.data[1].embedding == [0.5, 0.25, -0.125]
    assert bedrock.requests[-1].body == {
        "texts": ["first text", "second text"],
        "input_type": "search_document",
    }


def test_the_spend_record_carries_input_output_cache_reads_and_cache_writes(
    sdk: openai.OpenAI, gateway: GatewayProcess
) -> None:
    made = sdk.chat.completions.with_raw_response.create(
        model="claude-bedrock", messages=[{"role": "user", "content": "hi"}]
    )
    assert made.http_response.status_code == 200
    records = gateway.admin("GET", "/admin/spend/logs", params={"limit": 1}).json()["data"]
    record = records[0]
    assert record["deployment"] == "claude-bedrock/bedrock" and record["status"] == "ok"
    assert (record["prompt_tokens"], record["completion_tokens"]) == (13, 7)
    assert (record["cached_tokens"], record["cache_write_tokens"]) == (4, 2)
    # 9 uncached at $3/M, 4 cached at $0.30/M, 7 out at $15/M
    assert record["cost_nanos"] == 9 * 3000 + 4 * 300 + 7 * 15000
