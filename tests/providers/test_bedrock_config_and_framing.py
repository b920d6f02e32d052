"""Pure parts of the Bedrock and Cohere providers: what a deployment must say, the egress
allowlist's regional pattern, the event-stream framing as botocore decodes it, and the
translations in both directions."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer

from gateway.config import GatewayConfig
from gateway.errors import ConfigError, InvalidRequest, SecretUnavailable, UpstreamError
from gateway.integrity import policies_dir
from gateway.providers import bedrock as provider
from gateway.providers.aws_credentials import key_pair
from gateway.providers.egress import enforce, host_matches, parse_policy
from gateway.secrets.secret import Secret
from gateway.serve import parse_config
from gateway.wire import bedrock as wire
from tests.support import eventstream, recorded

REGIONAL = "https://bedrock-runtime.eu-west-3.amazonaws.com"


def config(**deployment: Any) -> GatewayConfig:
    entry = {"model": "m", "provider": "bedrock", "upstream_model": "amazon.nova-pro-v1:0"}
    return parse_config(yaml.safe_dump({"deployments": [{**entry, **deployment}]}), "test")


def test_the_region_is_read_from_the_regional_endpoint_when_not_given() -> None:
    cfg = config(base_url=REGIONAL, credential="env:AWS_PAIR")
    assert provider.BedrockAdapter(cfg.deployments[0], None).region == "eu-west-3"  # type: ignore[arg-type]
    enforce(cfg.deployments, policies_dir(cfg.verify))  # on the shipped allowlist by pattern


def test_a_deployment_without_a_region_anywhere_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"needs aws\.region"):
        config(base_url="https://bedrock.example.com", credential="env:AWS_PAIR")


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {
            "credential": "env:AWS_PAIR",
            "aws": {
                "web_identity": {"role_arn": "arn:aws:iam::123456789012:role/r", "token_file": "/t"}
            },
        },
    ],
)
def test_exactly_one_of_a_key_pair_reference_and_web_identity(extra: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="exactly one of credential"):
        config(base_url=REGIONAL, **extra)


def test_a_role_arn_that_is_not_one_is_refused() -> None:
    with pytest.raises(ConfigError, match="role_arn"):
        config(base_url=REGIONAL, aws={"web_identity": {"role_arn": "admin", "token_file": "/t"}})


def test_aws_settings_on_another_provider_are_refused() -> None:
    with pytest.raises(ConfigError, match="aws does not apply to provider openai"):
        parse_config(
            yaml.safe_dump(
                {
                    "deployments": [
                        {
                            "model": "m",
                            "provider": "openai",
                            "base_url": "https://api.openai.com/v1",
                            "credential": "env:K",
                            "aws": {"region": "us-east-1"},
                        }
                    ]
                }
            ),
            "test",
        )


def test_the_regional_pattern_matches_exactly_one_label() -> None:
    pattern = "bedrock-runtime.*.amazonaws.com"
    assert host_matches(pattern, "bedrock-runtime.us-east-1.amazonaws.com")
    assert not host_matches(pattern, "bedrock-runtime.amazonaws.com")
    assert not host_matches(pattern, "bedrock-runtime.evil.example.amazonaws.com")
    assert not host_matches(pattern, "bedrock-runtime.us-east-1.amazonaws.com.evil.example")
    for loose in ("api.*.com", "*.*.amazonaws.com", "a.*.*.amazonaws.com"):
        with pytest.raises(ConfigError):
            parse_policy({"version": 1, "providers": {"p": {"hosts": [loose]}}}, "egress.yaml")


def test_a_non_aws_host_for_bedrock_is_refused_at_start_up() -> None:
    cfg = config(
        base_url="https://bedrock-runtime.us-east-1.evil.example",
        aws={"region": "us-east-1"},
        credential="env:AWS_PAIR",
    )
    with pytest.raises(ConfigError, match="not on the egress allowlist"):
        enforce(cfg.deployments, policies_dir(cfg.verify))


def test_an_sts_endpoint_off_the_allowlist_is_refused_at_start_up() -> None:
    cfg = config(
        base_url=REGIONAL,
        aws={
            "web_identity": {
                "role_arn": "arn:aws:iam::123456789012:role/r",
                "token_file": "/var/run/secrets/eks/token",
                "sts_endpoint": "https://sts.evil.example",
            }
        },
    )
    with pytest.raises(ConfigError, match=r"aws\.web_identity\.sts_endpoint"):
        enforce(cfg.deployments, policies_dir(cfg.verify))


def test_the_key_pair_secret_is_parsed_and_a_bad_one_never_repeated() -> None:
    pair = key_pair(
        Secret(json.dumps({"AccessKeyId": "AKIA1", "SecretAccessKey": "s", "SessionToken": "t"}))
    )
    assert (pair.access_key, pair.secret_key, pair.token) == ("AKIA1", "s", "t")
    for bad in ("AKIA1:plaintext-secret-xyz", json.dumps({"access_key_id": "AKIA1"}), "[]"):
        with pytest.raises(SecretUnavailable) as raised:
            key_pair(Secret(bad))
        assert "plaintext-secret-xyz" not in str(raised.value)


def test_the_fakes_event_stream_frames_decode_with_botocore_and_a_flipped_bit_is_caught() -> None:
    events = recorded.reply("bedrock", "converse_stream")
    framed = b"".join(eventstream.event(e["event"], e["data"]) for e in events)
    buffer = EventStreamBuffer()
    buffer.add_data(framed)
    decoded = [(m.headers[":event-type"], json.loads(m.payload)) for m in buffer]
    assert decoded == [(e["event"], e["data"]) for e in events]
    broken = bytearray(framed)
    broken[20] ^= 1
    damaged = EventStreamBuffer()
    damaged.add_data(bytes(broken))
    with pytest.raises(ChecksumMismatch):
        list(damaged)


def test_converse_stream_translation_ends_with_done_only_after_metadata() -> None:
    translator = wire.ConverseStreamTranslator("m", include_usage=True)
    out: list[bytes] = []
    for item in recorded.reply("bedrock", "converse_stream"):
        assert not translator.done
        out += translator.feed(item["event"], json.dumps(item["data"]).encode())
    assert translator.done and out[-1] == b"data: [DONE]\n\n"
    assert translator.usage is not None
    assert (translator.usage.prompt_tokens, translator.usage.cached_tokens) == (13, 4)
    assert translator.usage.cache_write_tokens == 2
    with pytest.raises(UpstreamError):
        wire.ConverseStreamTranslator("m", False).feed("contentBlockDelta", b"{not json")


def test_an_image_url_that_is_not_a_data_url_is_refused_the_gateway_fetches_nothing() -> None:
    body = {
        "model": "m",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "http://169.254.169.254/x.png"}}
                ],
            }
        ],
    }
    with pytest.raises(InvalidRequest, match="base64 data URLs only"):
        wire.request_to_converse(body)


def test_consecutive_tool_results_merge_into_one_user_turn() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "two cities"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "a", "type": "function", "function": {"name": "w", "arguments": "{}"}},
                    {"id": "b", "type": "function", "function": {"name": "w", "arguments": "{}"}},
                ],
            },
            {"role": "tool", "tool_call_id": "a", "content": "sun"},
            {"role": "tool", "tool_call_id": "b", "content": "rain"},
        ]
    }
    turns = wire.request_to_converse(body)["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert [b["toolResult"]["toolUseId"] for b in turns[2]["content"]] == ["a", "b"]


def test_bedrock_error_shapes_map_to_the_gateway_classes() -> None:
    def mapped(name: str) -> Any:
        error = recorded.reply("bedrock", name)
        headers = {"x-amzn-ErrorType": error["type"] + ":http://internal.amazon.com/coral/"}
        return provider.failure("d", error["status"], json.dumps(error["body"]).encode(), headers)

    throttled = mapped("error_throttling")
    assert throttled.status == 429 and throttled.headers == {"Retry-After": "1"}
    assert mapped("error_too_long").code == "context_length_exceeded"
    assert mapped("error_signature").__class__.__name__ == "UpstreamCredentialRejected"
