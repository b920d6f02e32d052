"""Issue 14, items 1, 2 and 5, with the official openai SDK against a running gateway: the
Responses API (passed through to OpenAI and Azure deployments, translated to chat for Anthropic
and OpenAI-compatible ones), ``previous_response_id`` both ways, the legacy completions API,
``models.retrieve``, and model aliases and wildcards. The upstream is the fake that replays the
providers' recorded replies (OpenAI's Responses and Chat formats, Anthropic's Messages)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI
from pydantic import BaseModel

from gateway.errors import ConfigError
from gateway.serve import parse_config
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

PROVIDER_KEY = "sk-responses-fake-provider-key-0123456789abcdef"
TEXT = FakeUpstream.REPLY_TEXT
CONFIG = """
deployments:
  - model: gpt
    provider: openai
    upstream_model: upstream-gpt
    base_url: {upstream}/v1
    credential: env:FAKE_PROVIDER_KEY
    allow_private_network: true
  - model: azure-gpt
    provider: azure
    upstream_model: my-azure-deployment
    api_version: "2025-03-01-preview"
    base_url: {upstream}
    credential: env:FAKE_PROVIDER_KEY
    allow_private_network: true
  - model: claude
    provider: anthropic
    upstream_model: claude-up
    base_url: {upstream}
    credential: env:FAKE_PROVIDER_KEY
    allow_private_network: true
  - model: compat
    provider: openai_compatible
    upstream_model: compat-up
    base_url: {upstream}/v1
    allow_private_network: true
  - model: anthropic/*
    provider: anthropic
    base_url: {upstream}
    credential: env:FAKE_PROVIDER_KEY
    allow_private_network: true
  - model: gpt-pair
    id: pair-a
    provider: openai
    upstream_model: up-a
    base_url: {upstream}/v1
    credential: env:FAKE_PROVIDER_KEY
    allow_private_network: true
  - model: gpt-pair
    id: pair-b
    provider: openai
    upstream_model: up-b
    base_url: {upstream}/v1
    credential: env:FAKE_PROVIDER_KEY
    allow_private_network: true
router:
  retries: 0
  aliases: {{cheap: claude, sonnet: anthropic/claude-sonnet-x}}
verify:
  mode: "off"
governance:
  default_prices: {{input: "0"}}
"""
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
# What each model's upstream request goes to.
PATHS = {
    "gpt": "/v1/responses",
    "azure-gpt": "/openai/responses",
    "claude": "/v1/messages",
    "compat": "/v1/chat/completions",
}


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    workdir: Path = tmp_path_factory.mktemp("responses-gateway")
    config = CONFIG.format(upstream=upstream_server.base_url)
    process = GatewayProcess(workdir, config, env={"FAKE_PROVIDER_KEY": PROVIDER_KEY}).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def key(gateway: GatewayProcess) -> str:
    created: str = gateway.create_key(["*"])["key"]
    return created


@pytest.fixture
def client(gateway: GatewayProcess, key: str) -> Iterator[OpenAI]:
    with OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0) as made:
        yield made


def posts(upstream: FakeUpstream) -> list[Any]:
    return [r for r in upstream.requests if r.method == "POST"]


def no_key_in_the_log(gateway: GatewayProcess, *keys: str) -> None:
    log = gateway.stderr()
    for secret in (PROVIDER_KEY, *keys):
        assert secret not in log


# -- POST /v1/responses -----------------------------------------------------------------------
@pytest.mark.parametrize("model", ["gpt", "azure-gpt", "claude", "compat"])
def test_responses_create_answers_with_the_upstreams_text_and_usage(
    client: OpenAI, upstream: FakeUpstream, model: str
) -> None:
    response = client.responses.create(model=model, input="Say hello", instructions="Be brief")
    assert response.output_text == TEXT
    assert response.status == "completed"
    assert response.usage is not None and response.usage.output_tokens == 7
    (seen,) = posts(upstream)
    assert seen.path == PATHS[model]
    if model == "gpt":  # passed through: the Responses body, the deployment's model
        assert seen.body["model"] == "upstream-gpt" and seen.body["input"] == "Say hello"
        assert seen.body["instructions"] == "Be brief"
        assert seen.headers["Authorization"] == f"Bearer {PROVIDER_KEY}"
    elif model == "azure-gpt":
        assert seen.query == {"api-version": "2025-03-01-preview"}
        assert seen.body["model"] == "my-azure-deployment" and seen.headers["api-key"]
    elif model == "claude":  # translated: instructions are the system prompt
        assert seen.body["system"] == "Be brief" and seen.body["model"] == "claude-up"
    else:
        assert seen.body["messages"][0] == {"role": "system", "content": "Be brief"}


@pytest.mark.parametrize("model", ["gpt", "claude", "compat"])
def test_responses_stream_sends_the_responses_event_sequence_with_usage(
    client: OpenAI, upstream: FakeUpstream, model: str
) -> None:
    with client.responses.stream(model=model, input="Say hello") as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds and "response.output_text.done" in kinds
    numbers = [e.sequence_number for e in events]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    assert final.output_text.strip() == TEXT  # the recorded chat stream ends "upstream. "
    assert final.usage is not None and final.usage.output_tokens == 7


@pytest.mark.parametrize("model", ["gpt", "claude"])
def test_a_function_call_and_its_output_make_a_round_trip(
    client: OpenAI, upstream: FakeUpstream, model: str
) -> None:
    first = client.responses.create(model=model, input="Weather in Paris?", tools=[WEATHER])  # type: ignore[list-item]
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    history: list[Any] = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "type": "function_call",
            "call_id": call.call_id,
            "name": call.name,
            "arguments": call.arguments,
        },
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21C"},
    ]
    second = client.responses.create(model=model, input=history, tools=[WEATHER])  # type: ignore[list-item]
    assert second.output_text
    seen = posts(upstream)[-1]
    if model == "gpt":
        assert seen.body["input"][-1]["output"] == "sunny, 21C"
        assert second.output_text == "The tool said: sunny, 21C"
    else:
        blocks = [b for m in seen.body["messages"] for b in m["content"] if isinstance(b, dict)]
        used = [b for b in blocks if b["type"] == "tool_use"]
        results = [b for b in blocks if b["type"] == "tool_result"]
        assert used[0]["id"] == call.call_id and used[0]["input"] == {"city": "Paris"}
        assert results == [
            {"type": "tool_result", "tool_use_id": call.call_id, "content": "sunny, 21C"}
        ]


def test_developer_messages_images_and_settings_are_translated_for_a_chat_deployment(
    client: OpenAI, upstream: FakeUpstream
) -> None:
    image = "data:image/png;base64,iVBORw0KGgo="
    items: Any = [
        {"role": "developer", "content": "Answer in French."},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is this?"},
                {"type": "input_image", "image_url": image, "detail": "low"},
            ],
        },
    ]
    for model in ("compat", "claude"):
        client.responses.create(
            model=model,
            input=items,
            max_output_tokens=99,
            reasoning={"effort": "low", "summary": "auto"},
            include=["reasoning.encrypted_content"],
            prompt_cache_key="k1",
            store=False,
        )
    compat, claude = (r.body for r in posts(upstream))
    assert compat["messages"] == [
        {"role": "system", "content": "Answer in French."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": image, "detail": "low"}},
            ],
        },
    ]
    assert compat["max_tokens"] == 99 and compat["reasoning_effort"] == "low"
    assert "include" not in compat and "prompt_cache_key" not in compat
    assert claude["system"] == "Answer in French." and claude["max_tokens"] == 99
    assert [b["type"] for b in claude["messages"][0]["content"]] == ["text", "image"]


class Weather(BaseModel):
    city: str
    celsius: int


@pytest.mark.parametrize("model", ["gpt", "compat"])
def test_structured_output_reaches_the_upstream_as_its_json_schema(
    client: OpenAI, upstream: FakeUpstream, model: str
) -> None:
    upstream.then(content=['{"city": "Paris", "celsius": 21}'])
    parsed = client.responses.parse(model=model, input="Weather?", text_format=Weather)
    assert parsed.output_parsed == Weather(city="Paris", celsius=21)
    (seen,) = posts(upstream)
    if model == "gpt":
        schema = seen.body["text"]["format"]
        assert schema["type"] == "json_schema" and schema["strict"] is True
    else:
        schema = seen.body["response_format"]["json_schema"]
        assert seen.body["response_format"]["type"] == "json_schema"
    assert schema["name"] == "Weather" and set(schema["schema"]["properties"]) == {
        "city",
        "celsius",
    }


def test_a_follow_up_on_a_translated_deployment_is_sent_after_the_earlier_turns(
    client: OpenAI, upstream: FakeUpstream
) -> None:
    first = client.responses.create(model="claude", input="My name is Ada.", instructions="Old")
    second = client.responses.create(
        model="claude", input="What is my name?", previous_response_id=first.id
    )
    third = client.responses.create(
        model="claude", input="And again?", previous_response_id=second.id, instructions="New"
    )
    assert third.previous_response_id == second.id
    turns = posts(upstream)[-1].body
    assert turns["system"] == "New"  # instructions are not carried over, as OpenAI documents
    said = [(m["role"], b.get("text")) for m in turns["messages"] for b in m["content"]]
    assert said == [
        ("user", "My name is Ada."),
        ("assistant", TEXT),
        ("user", "What is my name?"),
        ("assistant", TEXT),
        ("user", "And again?"),
    ]


def test_a_follow_up_on_an_openai_deployment_goes_to_the_deployment_that_holds_it(
    client: OpenAI, upstream: FakeUpstream
) -> None:
    response = client.responses.create(model="gpt-pair", input="one")
    ids = [response.id]
    for turn in range(5):  # round robin would alternate; the state is with one deployment
        response = client.responses.create(
            model="gpt-pair", input=f"turn {turn}", previous_response_id=response.id
        )
        ids.append(response.id)
    seen = posts(upstream)
    assert len({r.body["model"] for r in seen}) == 1
    assert [r.body.get("previous_response_id") for r in seen] == [None, *ids[:-1]]


def test_a_response_id_is_only_continued_by_the_key_that_made_it(
    gateway: GatewayProcess, client: OpenAI, upstream: FakeUpstream
) -> None:
    other = gateway.create_key(["*"])["key"]
    with OpenAI(base_url=gateway.url + "/v1", api_key=other, max_retries=0) as stranger:
        for model in ("gpt", "claude"):
            made = client.responses.create(model=model, input="secret plans")
            before = len(posts(upstream))
            with pytest.raises(openai.BadRequestError) as caught:
                stranger.responses.create(model=model, input="go on", previous_response_id=made.id)
            assert caught.value.code == "previous_response_not_found"
            assert len(posts(upstream)) == before  # refused before anything was sent


def test_store_false_keeps_nothing_to_follow_up_on(client: OpenAI, upstream: FakeUpstream) -> None:
    made = client.responses.create(model="claude", input="hello", store=False)
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="claude", input="again", previous_response_id=made.id)
    assert "previous_response_id" in caught.value.message


def test_a_hosted_tool_is_passed_to_openai_and_refused_by_name_on_a_translated_deployment(
    client: OpenAI, upstream: FakeUpstream
) -> None:
    search: Any = {"type": "file_search", "vector_store_ids": ["vs_1"]}
    client.responses.create(model="gpt", input="find it", tools=[search])
    assert posts(upstream)[-1].body["tools"] == [search]
    before = len(posts(upstream))
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="claude", input="find it", tools=[search])
    assert "'file_search'" in caught.value.message and caught.value.param == "tools[0]"
    assert len(posts(upstream)) == before


def test_web_search_is_not_offered_to_a_translated_model_and_the_answer_says_so(
    client: OpenAI, upstream: FakeUpstream
) -> None:
    raw = client.responses.with_raw_response.create(
        model="claude",
        input="hi",
        tools=[{"type": "web_search"}, WEATHER],  # type: ignore[list-item]
    )
    assert raw.headers["x-sealgate-ignored-tools"] == "web_search"
    assert [t["name"] for t in posts(upstream)[-1].body["tools"]] == ["get_weather"]


def test_namespace_and_custom_tools_are_translated_and_their_calls_come_back_in_kind(
    client: OpenAI, upstream: FakeUpstream
) -> None:
    tools: Any = [
        {"type": "namespace", "name": "agents", "description": "d", "tools": [WEATHER]},
        {"type": "custom", "name": "apply_patch", "description": "patch files"},
    ]
    upstream.then(tool_name="agents__get_weather")
    response = client.responses.create(model="claude", input="hi", tools=tools)
    sent = posts(upstream)[-1].body["tools"]
    assert [t["name"] for t in sent] == ["agents__get_weather", "apply_patch"]
    assert sent[1]["input_schema"]["required"] == ["input"]
    (call,) = response.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert call.model_dump()["namespace"] == "agents"
    upstream.then(tool_name="apply_patch", tool_arguments=json.dumps({"input": "*** patch"}))
    (patch,) = client.responses.create(model="claude", input="hi", tools=tools).output
    assert patch.type == "custom_tool_call" and patch.input == "*** patch"


@pytest.mark.parametrize(
    ("extra", "param"),
    [({"bogus": 1}, "bogus"), ({"base_url": "http://elsewhere"}, "base_url")],
)
def test_unknown_and_steering_fields_are_refused_by_name(
    client: OpenAI, upstream: FakeUpstream, extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="gpt", input="hi", extra_body=extra)
    assert caught.value.param == param
    assert posts(upstream) == []


def test_an_upstream_error_event_mid_stream_ends_the_clients_stream_with_an_error(
    client: OpenAI, upstream: FakeUpstream
) -> None:
    upstream.then(stream_error=f"exploded; key was {PROVIDER_KEY}")
    with (
        pytest.raises(openai.APIError) as caught,
        client.responses.stream(model="gpt", input="hi") as stream,
    ):
        list(stream)
    assert PROVIDER_KEY not in str(caught.value)


def test_responses_count_against_the_keys_rpm_limit_like_chat(
    gateway: GatewayProcess, upstream: FakeUpstream
) -> None:
    limited = gateway.create_key(["gpt"], rpm_limit=1)["key"]
    with OpenAI(base_url=gateway.url + "/v1", api_key=limited, max_retries=0) as client:
        client.responses.create(model="gpt", input="one")
        with pytest.raises(openai.RateLimitError):
            client.responses.create(model="gpt", input="two")
        with pytest.raises(openai.RateLimitError):  # the same counter as chat
            client.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "x"}])
    assert len(posts(upstream)) == 1


def test_a_request_refused_for_its_translation_reserves_nothing(
    gateway: GatewayProcess, upstream: FakeUpstream
) -> None:
    limited = gateway.create_key(["claude"], rpm_limit=1)["key"]
    search: Any = {"type": "file_search", "vector_store_ids": ["vs_1"]}
    with OpenAI(base_url=gateway.url + "/v1", api_key=limited, max_retries=0) as client:
        with pytest.raises(openai.BadRequestError):
            client.responses.create(model="claude", input="find it", tools=[search])
        assert client.responses.create(model="claude", input="hi").output_text == TEXT


@pytest.mark.parametrize(("model", "prompt_tokens"), [("gpt", 11), ("claude", 13)])
def test_a_responses_call_is_recorded_in_spend_with_its_deployment_and_tokens(
    gateway: GatewayProcess, upstream: FakeUpstream, model: str, prompt_tokens: int
) -> None:
    made = gateway.create_key([model])
    with OpenAI(base_url=gateway.url + "/v1", api_key=made["key"], max_retries=0) as client:
        client.responses.create(model=model, input="hi")
        with client.responses.stream(model=model, input="hi") as stream:
            list(stream)
    logs = gateway.admin("GET", "/admin/spend/logs", params={"key_id": made["id"]}).json()
    rows = logs["data"]
    assert len(rows) == 2
    for row in rows:
        assert row["model"] == model and row["status"] == "ok"
        assert row["deployment"] == f"{model}/{'openai' if model == 'gpt' else 'anthropic'}"
        assert row["prompt_tokens"] == prompt_tokens and row["completion_tokens"] == 7


def test_an_upstream_error_echoing_the_provider_key_does_not_reach_the_client(
    client: OpenAI, upstream: FakeUpstream
) -> None:
    upstream.then(status=400, error_message=f"bad input; key was {PROVIDER_KEY}")
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="gpt", input="hi")
    assert PROVIDER_KEY not in json.dumps(caught.value.body)


# -- POST /v1/completions -----------------------------------------------------------------------
@pytest.mark.parametrize("model", ["gpt", "claude"])
def test_legacy_completions_answer_with_text_and_usage(
    client: OpenAI, upstream: FakeUpstream, model: str
) -> None:
    completion = client.completions.create(model=model, prompt="Say hello", max_tokens=20)
    assert completion.object == "text_completion"
    assert completion.choices[0].text == TEXT
    assert completion.usage is not None and completion.usage.completion_tokens == 7
    (seen,) = posts(upstream)
    assert seen.path == ("/v1/chat/completions" if model == "gpt" else "/v1/messages")
    assert seen.body["max_tokens"] == 20


@pytest.mark.parametrize("model", ["gpt", "claude"])
def test_legacy_completions_stream_text_chunks(
    client: OpenAI, upstream: FakeUpstream, model: str
) -> None:
    chunks = list(client.completions.create(model=model, prompt="Say hello", stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices).strip() == TEXT
    assert all(c.object == "text_completion" for c in chunks)


@pytest.mark.parametrize(("field", "value"), [("echo", True), ("suffix", "x"), ("best_of", 2)])
def test_legacy_completions_refuse_what_chat_cannot_do_by_name(
    client: OpenAI, upstream: FakeUpstream, field: str, value: Any
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model="gpt", prompt="x", extra_body={field: value})
    assert caught.value.param == field
    assert posts(upstream) == []


# -- GET /v1/models/{id} ------------------------------------------------------------------------
def test_models_retrieve_finds_only_models_the_key_may_use(gateway: GatewayProcess) -> None:
    scoped = gateway.create_key(["gpt", "anthropic/*"])["key"]
    with OpenAI(base_url=gateway.url + "/v1", api_key=scoped, max_retries=0) as client:
        assert client.models.retrieve("gpt").id == "gpt"
        assert client.models.retrieve("anthropic/claude-x").id == "anthropic/claude-x"
        assert client.models.retrieve("sonnet").id == "sonnet"  # an alias of a wildcard name
        for hidden in ("claude", "cheap", "no-such-model"):
            with pytest.raises(openai.NotFoundError):
                client.models.retrieve(hidden)
    unauthenticated = httpx.get(gateway.url + "/v1/models/gpt")
    assert unauthenticated.status_code == 401


# -- aliases and wildcards ----------------------------------------------------------------------
def test_a_wildcard_deployment_sends_the_matched_name_as_the_upstream_model(
    client: OpenAI, upstream: FakeUpstream
) -> None:
    chat = client.chat.completions.create(
        model="anthropic/claude-haiku-x", messages=[{"role": "user", "content": "hi"}]
    )
    client.responses.create(model="anthropic/claude-opus-y", input="hi")
    first, second = posts(upstream)
    assert first.path == second.path == "/v1/messages"  # the wildcard deployment's pinned URL
    assert first.body["model"] == "claude-haiku-x" and second.body["model"] == "claude-opus-y"
    assert chat.model == "anthropic/claude-haiku-x"


def test_a_key_allowing_a_wildcard_may_use_the_names_it_matches_and_no_other(
    gateway: GatewayProcess, upstream: FakeUpstream
) -> None:
    scoped = gateway.create_key(["anthropic/*"])["key"]
    with OpenAI(base_url=gateway.url + "/v1", api_key=scoped, max_retries=0) as client:
        client.responses.create(model="anthropic/claude-x", input="hi")
        with pytest.raises(openai.PermissionDeniedError):
            client.responses.create(model="gpt", input="hi")
        with pytest.raises(openai.PermissionDeniedError):
            client.responses.create(model="claude", input="hi")
    assert len(posts(upstream)) == 1


def test_an_alias_is_served_by_its_target_and_recorded_as_it(
    gateway: GatewayProcess, upstream: FakeUpstream
) -> None:
    made = gateway.create_key(["cheap"])
    with OpenAI(base_url=gateway.url + "/v1", api_key=made["key"], max_retries=0) as client:
        client.chat.completions.create(model="cheap", messages=[{"role": "user", "content": "x"}])
        with pytest.raises(openai.PermissionDeniedError):  # another alias: not this key's
            client.responses.create(model="sonnet", input="hi")
    (seen,) = posts(upstream)
    assert seen.body["model"] == "claude-up"
    rows = gateway.admin("GET", "/admin/spend/logs", params={"key_id": made["id"]}).json()["data"]
    assert [r["model"] for r in rows] == ["claude"]


@pytest.mark.parametrize("name", ["anthropic/a b", "anthropic/x\ny", "anthropic/" + "x" * 300])
def test_a_name_a_wildcard_serves_must_be_a_plain_model_name(
    client: OpenAI, upstream: FakeUpstream, name: str
) -> None:
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model=name, input="hi")
    assert posts(upstream) == []


@pytest.mark.parametrize(
    ("router", "expected"),
    [
        ("aliases: {gpt: gpt}", "'gpt' is a deployed model"),
        ("aliases: {fast: nothing}", "names unknown model 'nothing'"),
    ],
)
def test_aliases_must_name_a_served_model_and_not_hide_one(router: str, expected: str) -> None:
    text = f"""
deployments:
  - model: gpt
    provider: openai
    base_url: https://api.openai.com/v1
    credential: env:OPENAI_API_KEY
router:
  {router}
"""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "gw.yaml")
    assert expected in str(caught.value)


def test_a_wildcard_deployment_takes_no_upstream_model() -> None:
    text = """
deployments:
  - model: anthropic/*
    provider: anthropic
    upstream_model: claude-x
    base_url: https://api.anthropic.com
    credential: env:ANTHROPIC_API_KEY
"""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "gw.yaml")
    assert "upstream_model does not apply" in str(caught.value)


def test_no_key_reached_the_gateways_log(gateway: GatewayProcess, key: str) -> None:
    no_key_in_the_log(gateway, key)
