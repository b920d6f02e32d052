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


def _plain_chunks(framed: bytes, translator: wire.ConverseStreamTranslator) -> list[bytes]:
    """What the adapter wrote before ``EventStreamDecoder``: botocore's buffer as it comes, each
    event's headers parsed afresh and its payload handed to the translator."""
    buffer = EventStreamBuffer()
    buffer.add_data(framed)
    out: list[bytes] = []
    for message in buffer:
        out += translator.feed(str(message.headers[":event-type"]), message.payload)
    return out


def _translators() -> tuple[wire.ConverseStreamTranslator, wire.ConverseStreamTranslator]:
    one, other = (wire.ConverseStreamTranslator("m", include_usage=True) for _ in range(2))
    other.id, other.created = one.id, one.created
    return one, other


@pytest.mark.parametrize("name", ["converse_stream", "converse_stream_tool_use"])
@pytest.mark.parametrize("size", [1, 7, 64, 1 << 20])
def test_the_decoder_writes_the_same_bytes_as_botocores_buffer_read_afresh(
    name: str, size: int
) -> None:
    framed = b"".join(
        eventstream.event(e["event"], e["data"]) for e in recorded.reply("bedrock", name)
    )
    decoded, plain = _translators()
    decoder = provider.EventStreamDecoder("d", 1 << 20, decoded)
    out: list[bytes] = []
    for start in range(0, len(framed), size):
        out += decoder.feed(framed[start : start + size])
    assert b"".join(out) == b"".join(_plain_chunks(framed, plain))
    assert decoded.done and out[-1] == b"data: [DONE]\n\n"


def test_botocores_buffer_parses_headers_through_the_held_ones() -> None:
    """The decoder sets botocore's private ``_header_parser``: a botocore that stopped calling
    it would still decode, only slower; this test says so."""
    provider.EventStreamDecoder("d", 1 << 20, wire.ConverseStreamTranslator("m", False))
    held = provider.EventStreamDecoder.headers
    assert held is not None
    held.held.clear()
    framed = b"".join(
        eventstream.event(e["event"], e["data"])
        for e in recorded.reply("bedrock", "converse_stream")
    )
    provider.EventStreamDecoder("d", 1 << 20, wire.ConverseStreamTranslator("m", False)).feed(
        framed
    )
    kinds = sorted(str(h[":event-type"]) for h in held.held.values())
    assert kinds == [
        "contentBlockDelta",
        "contentBlockStop",
        "messageStart",
        "messageStop",
        "metadata",
    ]
    headers = next(iter(held.held.values()))
    with pytest.raises(TypeError):
        headers[":event-type"] = "messageStop"  # type: ignore[index]


def test_header_blocks_held_are_few_and_small_whatever_the_upstream_sends() -> None:
    provider.EventStreamDecoder("d", 1 << 20, wire.ConverseStreamTranslator("m", False))
    held = provider.EventStreamDecoder.headers
    assert held is not None
    held.held.clear()
    translator = wire.ConverseStreamTranslator("m", False)
    decoder = provider.EventStreamDecoder("d", 1 << 20, translator)
    for i in range(3 * provider.MAX_HELD_HEADER_BLOCKS):
        headers = {":event-type": "contentBlockStop", ":message-type": "event", "x-id": str(i)}
        decoder.feed(eventstream.message(headers, b'{"contentBlockIndex": 0}'))
    assert len(held.held) == provider.MAX_HELD_HEADER_BLOCKS
    held.held.clear()
    big = {":event-type": "contentBlockStop", ":message-type": "event", "x-pad": "p" * 600}
    decoder.feed(eventstream.message(big, b'{"contentBlockIndex": 0}'))
    assert held.held == {}


def test_the_decoder_checks_crcs_and_raises_a_streamed_exception_as_its_own_error() -> None:
    framed = b"".join(
        eventstream.event(e["event"], e["data"])
        for e in recorded.reply("bedrock", "converse_stream")
    )
    broken = bytearray(framed)
    broken[20] ^= 1
    decoder = provider.EventStreamDecoder("d", 1 << 20, wire.ConverseStreamTranslator("m", False))
    with pytest.raises(ChecksumMismatch):
        decoder.feed(bytes(broken))
    decoder = provider.EventStreamDecoder("d", 1 << 20, wire.ConverseStreamTranslator("m", False))
    thrown = eventstream.exception("throttlingException", {"message": "slow down, key AKIA1"})
    with pytest.raises(UpstreamError) as raised:
        decoder.feed(thrown)
    assert raised.value.code == "rate_limit_exceeded"
    assert "AKIA1" not in raised.value.message
