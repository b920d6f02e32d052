"""The gateway's SigV4 signer against botocore's ``SigV4Auth`` as the oracle: over a corpus of
Bedrock requests (model ids and inference-profile ARNs percent-encoded in the path, regions,
endpoints with and without ports, empty and non-ASCII bodies, with and without a session token,
instants either side of midnight) the headers it returns are exactly botocore's. That a request
signed this way is accepted on the wire is proven by the fake Bedrock of the upstream tests,
which recomputes every signature with botocore (``tests/support/fake_native.verify_sigv4``)."""

from __future__ import annotations

import itertools
import json
import logging
import random
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from gateway.errors import SecretUnavailable
from gateway.providers import sigv4
from gateway.providers.aws_credentials import key_pair
from gateway.providers.sigv4 import AwsCredentials, sign
from gateway.secrets.secret import Secret

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD+token/with+slashes=="
MODELS = [
    "anthropic.claude-3-5-sonnet-20240620-v1:0",
    "amazon.titan-embed-text-v2:0",
    "cohere.embed-english-v3",
    "cohere.rerank-v3-5:0",
    "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
    "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20240620-v1:0",
    "arn:aws:bedrock:eu-west-3:123456789012:application-inference-profile/a1b2c3d4e5f6",
    "arn:aws:bedrock:us-west-2::foundation-model/meta.llama3-1-70b-instruct-v1:0",
    "model with spaces~and+plus",
    "modèle-ünïcode",
]
OPERATIONS = ["converse", "converse-stream", "invoke"]
REGIONS = ["us-east-1", "eu-west-3", "ap-southeast-2", "us-gov-west-1"]
BASES = [
    "https://bedrock-runtime.{region}.amazonaws.com",
    "https://bedrock-runtime.{region}.amazonaws.com:443",
    "https://bedrock-runtime-fips.{region}.amazonaws.com:8443",
    "http://127.0.0.1:47123",
    "http://[::1]:9000",
    "https://proxy.example.com/aws//bedrock/",
    "https://proxy.example.com/a/b/../../aws/./bedrock",
]
BODIES = [
    b"",
    b"{}",
    json.dumps({"messages": [{"role": "user", "content": [{"text": "hi"}]}]}).encode(),
    json.dumps({"inputText": "héllo wörld, 日本語, emoji 🙂"}, ensure_ascii=False).encode(),
    json.dumps({"texts": ["x" * 5000], "input_type": "search_document"}).encode(),
]
HEADERS = [
    {"Content-Type": "application/json", "Accept": "application/json"},
    {"Content-Type": "application/json", "Accept": "application/vnd.amazon.eventstream"},
    {
        "Content-Type": "  application/json;   charset=utf-8 ",
        "User-Agent": "sealgate",
        "X-Trace": "a",
    },
]
INSTANTS = [
    datetime(2026, 12, 1, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2026, 12, 2, 0, 0, 0, tzinfo=UTC),
    datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC),
    datetime(2027, 1, 1, 0, 0, 1, tzinfo=UTC),
    datetime(2028, 2, 29, 12, 30, 0, tzinfo=UTC),
]


def url_of(base: str, region: str, model: str, operation: str) -> str:
    """The URL as the Bedrock adapter builds it (the model id percent-encoded whole)."""
    prefix = base.format(region=region).rstrip("/")
    return f"{prefix}/model/{quote(model, safe='')}/{operation}"


def botocore_signed(
    monkeypatch: pytest.MonkeyPatch,
    credentials: AwsCredentials,
    region: str,
    url: str,
    payload: bytes,
    headers: dict[str, str],
    when: datetime,
) -> dict[str, str]:
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: when.replace(tzinfo=None))
    request = AWSRequest(method="POST", url=url, data=payload, headers=headers)
    oracle = Credentials(credentials.access_key, credentials.secret_key, credentials.token)
    SigV4Auth(oracle, "bedrock", region).add_auth(request)
    return dict(request.headers.items())


CORPUS = list(
    itertools.product(MODELS, OPERATIONS, REGIONS, BASES, BODIES, HEADERS, (None, TOKEN), INSTANTS)
)


def test_a_corpus_of_bedrock_requests_gets_exactly_botocores_headers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cases = random.Random(15).sample(CORPUS, 1500)
    # every model, base, body and instant at least once whatever the sample drew
    cases += [
        (m, "converse", "us-east-1", BASES[0], b"{}", HEADERS[0], TOKEN, INSTANTS[0])
        for m in MODELS
    ]
    cases += [
        (MODELS[0], "invoke", "eu-west-3", b, BODIES[3], HEADERS[1], None, t)
        for b in BASES
        for t in INSTANTS
    ]
    for model, operation, region, base, body, headers, token, when in cases:
        credentials = AwsCredentials("AKIAIOSFODNN7EXAMPLE", SECRET, token)
        url = url_of(base, region, model, operation)
        expected = botocore_signed(monkeypatch, credentials, region, url, body, headers, when)
        got = sign(credentials, region, url, body, headers, "bedrock", now=when)
        assert got == expected, (url, body[:40], headers, token is not None, when)


def test_the_colon_of_a_model_id_is_signed_encoded_twice_as_aws_expects() -> None:
    """The URL carries ``%3A``; the canonical URI (not sent) carries ``%253A``."""
    url = url_of(BASES[0], "us-east-1", MODELS[0], "converse")
    assert "v1%3A0/converse" in url
    host, path, query = sigv4._target(url)
    assert host == "bedrock-runtime.us-east-1.amazonaws.com" and query == ""
    assert path == "/model/anthropic.claude-3-5-sonnet-20240620-v1%253A0/converse"


def test_a_session_token_is_sent_and_signed_and_no_content_sha256_header_is_added() -> None:
    when = INSTANTS[1]
    url = url_of(BASES[0], "us-east-1", MODELS[5], "converse-stream")
    with_token = sign(
        AwsCredentials("ASIA1", SECRET, TOKEN), "us-east-1", url, b"{}", {}, "bedrock", when
    )
    assert with_token["X-Amz-Security-Token"] == TOKEN
    assert "SignedHeaders=host;x-amz-date;x-amz-security-token," in with_token["Authorization"]
    without = sign(AwsCredentials("AKIA1", SECRET), "us-east-1", url, b"{}", {}, "bedrock", when)
    assert "X-Amz-Security-Token" not in without
    assert not any(name.lower() == "x-amz-content-sha256" for name in {**with_token, **without})


def test_a_request_signed_just_after_midnight_carries_the_new_day_in_its_scope() -> None:
    credentials = AwsCredentials("AKIA1", SECRET)
    url = url_of(BASES[0], "us-east-1", MODELS[0], "converse")
    before = sign(credentials, "us-east-1", url, b"{}", {}, "bedrock", INSTANTS[0])
    after = sign(credentials, "us-east-1", url, b"{}", {}, "bedrock", INSTANTS[1])
    assert (before["X-Amz-Date"], after["X-Amz-Date"]) == ("20261201T235959Z", "20261202T000000Z")
    assert "Credential=AKIA1/20261201/us-east-1/bedrock/aws4_request" in before["Authorization"]
    assert "Credential=AKIA1/20261202/us-east-1/bedrock/aws4_request" in after["Authorization"]


def test_the_signing_key_is_derived_once_per_secret_day_region_and_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    derived: list[tuple[str, str, str]] = []
    real = sigv4._derive

    def counting(secret: str, day: str, region: str, service: str) -> bytes:
        derived.append((day, region, service))
        return real(secret, day, region, service)

    monkeypatch.setattr(sigv4, "_derive", counting)
    monkeypatch.setattr(sigv4, "SIGNING_KEYS", sigv4.SigningKeys())
    url = url_of(BASES[0], "us-east-1", MODELS[0], "converse")
    first, rotated = AwsCredentials("AKIA1", SECRET), AwsCredentials("AKIA1", SECRET + "2")
    for _ in range(50):
        sign(first, "us-east-1", url, b"{}", {}, "bedrock", INSTANTS[0])
    sign(first, "us-east-1", url, b"{}", {}, "bedrock", INSTANTS[1])  # the next day
    sign(first, "eu-west-3", url, b"{}", {}, "bedrock", INSTANTS[1])  # another region
    sign(rotated, "us-east-1", url, b"{}", {}, "bedrock", INSTANTS[1])  # a rotated secret
    assert derived == [
        ("20261201", "us-east-1", "bedrock"),
        ("20261202", "us-east-1", "bedrock"),
        ("20261202", "eu-west-3", "bedrock"),
        ("20261202", "us-east-1", "bedrock"),
    ]
    assert len(sigv4.SIGNING_KEYS) == 4


def test_the_signing_key_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = sigv4.SigningKeys()
    for n in range(sigv4.KEYS_HELD * 3):
        keys.get(f"{SECRET}{n}", "20261201", "us-east-1", "bedrock")
    assert 0 < len(keys) <= sigv4.KEYS_HELD


def test_the_secret_and_token_appear_in_no_repr_nor_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    credentials = key_pair(
        Secret(
            json.dumps(
                {"access_key_id": "AKIA1", "secret_access_key": SECRET, "session_token": TOKEN}
            )
        )
    )
    url = url_of(BASES[0], "us-east-1", MODELS[0], "converse")
    sign(credentials, "us-east-1", url, b"{}", {}, "bedrock", INSTANTS[0])
    shown = repr(credentials) + str(credentials) + repr(sigv4.SIGNING_KEYS) + caplog.text
    assert "AKIA1" in repr(credentials)
    assert SECRET not in shown and TOKEN not in shown and "wJalr" not in shown


def test_a_key_pair_without_its_secret_is_refused_without_repeating_it() -> None:
    with pytest.raises(SecretUnavailable) as refused:
        key_pair(Secret(json.dumps({"access_key_id": "AKIA1", "session_token": TOKEN})))
    assert TOKEN not in str(refused.value) and TOKEN not in repr(refused.value)
