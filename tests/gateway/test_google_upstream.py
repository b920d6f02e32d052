"""``gemini`` and ``vertex_ai`` deployments through a running gateway, called with the official
openai and anthropic SDKs: generateContent and streamGenerateContent (``alt=sse``) on the way out,
OpenAI's and Anthropic's formats on the way back, against a fake Google on loopback
(tests/support/fake_google.py) that checks the Gemini key is in ``x-goog-api-key`` and never in
the URL, and accepts on Vertex only an OAuth token it minted itself for a JWT assertion signed
with the service-account key made here.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.fake_google import FakeGoogle
from tests.support.gateway_process import GatewayProcess

GEMINI_KEY = "AIzaSy-fake-" + secrets.token_urlsafe(24)
CLIENT_EMAIL = "sealgate-test@test-project.iam.gserviceaccount.com"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "the weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
                "additionalProperties": False,
            },
        },
    }
]
PIXEL = (  # a 1x1 PNG made for this test
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/"
    "PchI7wAAAABJRU5ErkJggg=="
)
MODELS = ["gemini-flash", "gemini-embed", "vertex-flash", "vertex-embed", "gemini-small"]


@pytest.fixture(scope="module")
def service_account() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def fake(service_account: rsa.RSAPrivateKey) -> Iterator[FakeGoogle]:
    server = FakeGoogle(GEMINI_KEY, service_account.public_key(), CLIENT_EMAIL).start()
    yield server
    server.stop()


def service_account_json(key: rsa.RSAPrivateKey, token_uri: str) -> str:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return json.dumps(
        {
            "type": "service_account",
            "project_id": "test-project",
            "private_key_id": "0123456789abcdef",
            "private_key": pem,
            "client_email": CLIENT_EMAIL,
            "client_id": "1234567890",
            "token_uri": token_uri,
        }
    )


def google_config(base: str, key_file: Path) -> str:
    vertex = f"{base}/v1/projects/test-project/locations/us-central1"
    return f"""
deployments:
  - model: gemini-flash
    provider: gemini
    upstream_model: gemini-2.5-flash
    base_url: {base}/v1beta
    credential: env:FAKE_GEMINI_KEY
    allow_private_network: true
  - model: gemini-embed
    provider: gemini
    upstream_model: gemini-embedding-001
    base_url: {base}/v1beta
    credential: env:FAKE_GEMINI_KEY
    allow_private_network: true
  - model: vertex-flash
    provider: vertex_ai
    upstream_model: gemini-2.5-flash
    base_url: {vertex}
    credential: file:{key_file}
    allow_private_network: true
  - model: vertex-embed
    provider: vertex_ai
    upstream_model: text-embedding-005
    base_url: {vertex}
    credential: file:{key_file}
    allow_private_network: true
  - model: gemini-small
    provider: gemini
    upstream_model: gemini-2.5-flash-lite
    base_url: {base}/v1beta
    credential: env:FAKE_GEMINI_KEY
    allow_private_network: true
router:
  retries: 0
  groups:
    gemini-small:
      fallbacks: {{context_window: [vertex-flash]}}
verify:
  mode: "off"
governance:  # text-embedding-005 is priced per character on Vertex: not in the token table
  deployments:
    vertex-embed/vertex_ai: {{prices: {{input: "0.025"}}}}
"""


@pytest.fixture(scope="module")
def gateway(
    fake: FakeGoogle,
    service_account: rsa.RSAPrivateKey,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayProcess]:
    workdir: Path = tmp_path_factory.mktemp("google")
    key_file = workdir / "service-account.json"
    key_file.write_text(service_account_json(service_account, fake.token_uri))
    key_file.chmod(0o600)
    config = google_config(fake.base_url, key_file)
    process = GatewayProcess(workdir, config, env={"FAKE_GEMINI_KEY": GEMINI_KEY}).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def virtual_key(gateway: GatewayProcess) -> str:
    return str(gateway.create_key(MODELS)["key"])


@pytest.fixture(scope="module")
def sdk(gateway: GatewayProcess, virtual_key: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=virtual_key, max_retries=0) as made:
        yield made


@pytest.fixture(scope="module")
def claude_sdk(gateway: GatewayProcess, virtual_key: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway.url, api_key=virtual_key, max_retries=0) as made:
        yield made


@pytest.fixture(autouse=True)
def _clean(fake: FakeGoogle) -> Iterator[None]:
    fake.reset()
    yield
    assert fake.violations == []


def streamed(stream: Any) -> tuple[str, str | None, Any, list[Any]]:
    text, finish, usage, calls = "", None, None, []
    for chunk in stream:
        if chunk.choices:
            delta = chunk.choices[0].delta
            text += delta.content or ""
            calls += delta.tool_calls or []
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    return text, finish, usage, calls


# -- Gemini API ----------------------------------------------------------------------------------
def test_gemini_chat_sends_the_key_in_x_goog_api_key_and_translates_system_and_usage(
    sdk: openai.OpenAI, fake: FakeGoogle
) -> None:
    reply = sdk.chat.completions.create(
        model="gemini-flash",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        temperature=0.2,
        max_tokens=50,
        stop=["END"],
    )
    assert reply.choices[0].message.content == "Hello from Gemini."
    assert reply.choices[0].finish_reason == "stop"
    usage = reply.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (11, 7)  # 5 + 2 thinking
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 4
    seen = fake.requests[-1]
    assert seen.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert seen.query == {} and seen.headers["x-goog-api-key"] == GEMINI_KEY
    assert seen.body["systemInstruction"] == {"parts": [{"text": "be brief"}]}
    assert seen.body["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]
    assert seen.body["generationConfig"] == {
        "temperature": 0.2,
        "maxOutputTokens": 50,
        "stopSequences": ["END"],
    }


def test_gemini_image_goes_as_inline_data(sdk: openai.OpenAI, fake: FakeGoogle) -> None:
    sdk.chat.completions.create(
        model="gemini-flash",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": PIXEL}},
                ],
            }
        ],
    )
    parts = fake.requests[-1].body["contents"][0]["parts"]
    assert parts[0] == {"text": "what is this?"}
    assert parts[1]["inlineData"]["mimeType"] == "image/png"
    assert parts[1]["inlineData"]["data"] == PIXEL.partition(",")[2]


def test_gemini_function_call_round_trip(sdk: openai.OpenAI, fake: FakeGoogle) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "weather in Paris?"}]
    first = sdk.chat.completions.create(
        model="gemini-flash",
        messages=messages,  # type: ignore[arg-type]
        tools=TOOLS,  # type: ignore[arg-type]
        tool_choice="required",
    )
    assert first.choices[0].finish_reason == "tool_calls"
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    sent = fake.requests[-1].body
    declaration = sent["tools"][0]["functionDeclarations"][0]
    assert declaration["name"] == "get_weather"
    assert declaration["parametersJsonSchema"] == TOOLS[0]["function"]["parameters"]
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "sunny"}'},
    ]
    second = sdk.chat.completions.create(
        model="gemini-flash",
        messages=messages,  # type: ignore[arg-type]
        tools=TOOLS,  # type: ignore[arg-type]
    )
    assert second.choices[0].message.content == "Hello from Gemini."
    contents = fake.requests[-1].body["contents"]
    assert contents[1] == {
        "role": "model",
        "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}],
    }
    assert contents[2] == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "get_weather", "response": {"sky": "sunny"}}}],
    }


def test_gemini_json_schema_output_becomes_response_json_schema(
    sdk: openai.OpenAI, fake: FakeGoogle
) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    sdk.chat.completions.create(
        model="gemini-flash",
        messages=[{"role": "user", "content": "json please"}],
        response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}},
    )
    config = fake.requests[-1].body["generationConfig"]
    assert config == {"responseMimeType": "application/json", "responseJsonSchema": schema}


def test_gemini_stream_is_alt_sse_translated_chunk_by_chunk_with_usage(
    sdk: openai.OpenAI, fake: FakeGoogle
) -> None:
    stream = sdk.chat.completions.create(
        model="gemini-flash",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage, _ = streamed(stream)
    assert text == "Hello from Gemini."
    assert finish == "stop"
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (11, 7)
    seen = fake.requests[-1]
    assert seen.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    assert seen.query == {"alt": "sse"}


def test_gemini_streamed_function_call(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model="gemini-flash",
        messages=[{"role": "user", "content": "weather?"}],
        tools=TOOLS,  # type: ignore[arg-type]
        stream=True,
    )
    _, finish, _, calls = streamed(stream)
    assert finish == "tool_calls"
    assert calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}


def test_a_safety_stop_is_finish_reason_content_filter(
    sdk: openai.OpenAI, fake: FakeGoogle
) -> None:
    fake.then("generate_content_safety").then("generate_content_prompt_blocked")
    for _ in range(2):
        reply = sdk.chat.completions.create(
            model="gemini-flash", messages=[{"role": "user", "content": "something bad"}]
        )
        assert reply.choices[0].finish_reason == "content_filter"
        assert reply.choices[0].message.content is None


def test_a_safety_stop_mid_stream_ends_with_content_filter(
    sdk: openai.OpenAI, fake: FakeGoogle
) -> None:
    fake.then("stream_generate_content_safety")
    stream = sdk.chat.completions.create(
        model="gemini-flash", messages=[{"role": "user", "content": "x"}], stream=True
    )
    text, finish, _, _ = streamed(stream)
    assert (text, finish) == ("Here is how", "content_filter")


def test_resource_exhausted_is_429_with_retry_after_from_retry_info(
    sdk: openai.OpenAI, fake: FakeGoogle
) -> None:
    fake.then("error_resource_exhausted", status=429)
    with pytest.raises(openai.RateLimitError) as caught:
        sdk.chat.completions.create(
            model="gemini-flash", messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.response.headers["Retry-After"] == "17"


def test_a_prompt_over_the_window_is_context_length_exceeded(
    sdk: openai.OpenAI, fake: FakeGoogle
) -> None:
    fake.then("error_context_too_long", status=400)
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(
            model="gemini-flash", messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.code == "context_length_exceeded"


def test_a_prompt_over_the_window_falls_back_to_the_context_window_list(
    sdk: openai.OpenAI, fake: FakeGoogle
) -> None:
    fake.then("error_context_too_long", status=400)
    reply = sdk.chat.completions.create(
        model="gemini-small", messages=[{"role": "user", "content": "a long one"}]
    )
    assert reply.choices[0].message.content == "Hello from Gemini."
    first, second = fake.requests
    assert first.path == "/v1beta/models/gemini-2.5-flash-lite:generateContent"
    assert second.path.endswith("/publishers/google/models/gemini-2.5-flash:generateContent")


def test_an_invalid_argument_is_a_400_with_google_message(
    sdk: openai.OpenAI, fake: FakeGoogle
) -> None:
    fake.then("error_invalid_argument", status=400)
    with pytest.raises(openai.BadRequestError, match="Invalid value at"):
        sdk.chat.completions.create(
            model="gemini-flash", messages=[{"role": "user", "content": "x"}]
        )


def test_an_invalid_api_key_is_refetched_once_then_502(
    sdk: openai.OpenAI, fake: FakeGoogle
) -> None:
    fake.then("error_api_key_invalid", status=400).then("error_api_key_invalid", status=400)
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.chat.completions.create(
            model="gemini-flash", messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.status_code == 502
    assert len(fake.requests) == 2  # the first refusal made the gateway refetch and try once more
    assert GEMINI_KEY not in caught.value.response.text


def test_a_parameter_gemini_lacks_is_a_400_naming_it(sdk: openai.OpenAI, fake: FakeGoogle) -> None:
    with pytest.raises(openai.BadRequestError, match="logit_bias"):
        sdk.chat.completions.create(
            model="gemini-flash",
            messages=[{"role": "user", "content": "x"}],
            logit_bias={"1": 1},
        )
    assert fake.requests == []


def test_gemini_embeddings_use_batch_embed_contents(sdk: openai.OpenAI, fake: FakeGoogle) -> None:
    answer = sdk.embeddings.create(model="gemini-embed", input=["one", "two"], dimensions=3)
    got = [[round(x, 6) for x in d.embedding] for d in answer.data]  # float32 via base64
    assert got == [[0.012, -0.034, 0.056], [0.021, 0.043, -0.065]]
    seen = fake.requests[-1]
    assert seen.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert seen.headers["x-goog-api-key"] == GEMINI_KEY
    assert seen.body["requests"][1] == {
        "model": "models/gemini-embedding-001",
        "content": {"parts": [{"text": "two"}]},
        "outputDimensionality": 3,
    }


# -- Anthropic ingress ---------------------------------------------------------------------------
def test_anthropic_client_served_by_gemini_json_and_stream(
    claude_sdk: anthropic.Anthropic, fake: FakeGoogle
) -> None:
    message = claude_sdk.messages.create(
        model="gemini-flash",
        max_tokens=100,
        system="be brief",
        messages=[{"role": "user", "content": "hi"}],
    )
    assert message.content[0].text == "Hello from Gemini."  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    # Anthropic counts cache reads apart from input_tokens: 11 prompt tokens, 4 of them cached
    assert message.usage.input_tokens == 7 and message.usage.cache_read_input_tokens == 4
    assert message.usage.output_tokens == 7
    assert fake.requests[-1].body["systemInstruction"] == {"parts": [{"text": "be brief"}]}
    with claude_sdk.messages.stream(
        model="vertex-flash", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello from Gemini."
    assert final.stop_reason == "end_turn"


def test_anthropic_client_tool_use_and_refusal_through_gemini(
    claude_sdk: anthropic.Anthropic, fake: FakeGoogle
) -> None:
    tools = [
        {
            "name": "get_weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    message = claude_sdk.messages.create(
        model="gemini-flash",
        max_tokens=100,
        tools=tools,  # type: ignore[arg-type]
        messages=[{"role": "user", "content": "weather?"}],
    )
    assert message.stop_reason == "tool_use"
    block = message.content[0]
    assert block.type == "tool_use" and block.input == {"city": "Paris"}
    fake.then("generate_content_safety")
    refused = claude_sdk.messages.create(
        model="gemini-flash", max_tokens=100, messages=[{"role": "user", "content": "bad"}]
    )
    assert refused.stop_reason == "refusal"


# -- Vertex AI -----------------------------------------------------------------------------------
def test_vertex_chat_uses_an_oauth_token_minted_from_the_service_account_key(
    sdk: openai.OpenAI, fake: FakeGoogle
) -> None:
    reply = sdk.chat.completions.create(
        model="vertex-flash", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content == "Hello from Gemini."
    seen = fake.requests[-1]
    assert seen.path == (
        "/v1/projects/test-project/locations/us-central1/publishers/google/models/"
        "gemini-2.5-flash:generateContent"
    )
    assert seen.headers["Authorization"] == f"Bearer {fake.issued[-1]}"
    assert "x-goog-api-key" not in seen.headers


def test_vertex_token_is_reused_until_refused_then_minted_again(
    sdk: openai.OpenAI, fake: FakeGoogle
) -> None:
    sdk.chat.completions.create(model="vertex-flash", messages=[{"role": "user", "content": "a"}])
    minted = fake.token_requests
    sdk.chat.completions.create(model="vertex-flash", messages=[{"role": "user", "content": "b"}])
    assert fake.token_requests == minted  # held in memory, not fetched per request
    fake.revoke()  # Vertex now answers 401 to the held token
    reply = sdk.chat.completions.create(
        model="vertex-flash", messages=[{"role": "user", "content": "c"}]
    )
    assert reply.choices[0].message.content == "Hello from Gemini."
    assert fake.token_requests == minted + 1
    assert fake.requests[-1].headers["Authorization"] == f"Bearer {fake.issued[-1]}"


def test_vertex_stream_and_embeddings(sdk: openai.OpenAI, fake: FakeGoogle) -> None:
    stream = sdk.chat.completions.create(
        model="vertex-flash",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage, _ = streamed(stream)
    assert (text, finish) == ("Hello from Gemini.", "stop")
    assert usage is not None and usage.prompt_tokens == 11
    answer = sdk.embeddings.create(model="vertex-embed", input=["one", "two"])
    assert len(answer.data) == 2 and answer.usage.prompt_tokens == 9
    seen = fake.requests[-1]
    assert seen.path.endswith("/publishers/google/models/text-embedding-005:predict")
    assert seen.body == {"instances": [{"content": "one"}, {"content": "two"}]}


def test_vertex_throttling_is_429_with_retry_after(sdk: openai.OpenAI, fake: FakeGoogle) -> None:
    fake.then("error_resource_exhausted", status=429)
    with pytest.raises(openai.RateLimitError) as caught:
        sdk.chat.completions.create(
            model="vertex-flash", messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.response.headers["Retry-After"] == "17"


def test_spend_records_carry_google_usage_with_cached_tokens(
    gateway: GatewayProcess, sdk: openai.OpenAI
) -> None:
    sdk.chat.completions.create(model="vertex-flash", messages=[{"role": "user", "content": "$"}])
    response = gateway.admin("GET", "/admin/spend/logs", params={"limit": 1})
    assert response.status_code == 200, response.text
    record = response.json()["data"][0]
    assert record["deployment"] == "vertex-flash/vertex_ai"
    assert (record["prompt_tokens"], record["completion_tokens"]) == (11, 7)
    assert record["cached_tokens"] == 4
    # gemini-2.5-flash at the bundled list price: 7 fresh input at 0.30, 4 cached at 0.03 and
    # 7 output at 2.50 USD per million tokens
    assert record["cost_usd"] == "0.000019720"


def test_no_credential_reaches_the_gateway_log(
    gateway: GatewayProcess, fake: FakeGoogle, service_account: rsa.RSAPrivateKey
) -> None:
    log = gateway.stderr_path.read_text()
    assert GEMINI_KEY not in log
    assert all(token not in log for token in fake.issued)
    body = service_account_json(service_account, fake.token_uri)
    secret_line = json.loads(body)["private_key"].splitlines()[1]
    assert secret_line not in log
    assert fake.issued  # the suite did mint tokens (the check above is not vacuous)


def test_health_ready_with_google_deployments(gateway: GatewayProcess) -> None:
    response = httpx.get(gateway.url + "/health/ready")
    assert response.status_code == 200
