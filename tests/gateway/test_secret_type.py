"""A Secret shows itself nowhere but through reveal()."""

from __future__ import annotations

import copy
import json
import logging
import pickle

import pytest

from gateway.secrets import Secret, parse_ref

VALUE = "sk-live-0123456789abcdefghij"


def test_repr_str_and_format_are_masked() -> None:
    secret = Secret(VALUE)
    for shown in (repr(secret), str(secret), f"{secret}", f"{secret!r}", "%s" % secret):
        assert VALUE not in shown
    assert secret.reveal() == VALUE


def test_pickling_is_refused() -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Secret(VALUE))


def test_json_encoding_is_refused() -> None:
    with pytest.raises(TypeError):
        json.dumps({"key": Secret(VALUE)})


def test_logging_a_secret_shows_the_mask(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        logging.getLogger("t").info("key is %s / %r", Secret(VALUE), Secret(VALUE))
    assert VALUE not in caplog.text and "*****" in caplog.text


def test_secrets_are_immutable_and_compare_by_value() -> None:
    secret = Secret(VALUE)
    with pytest.raises(AttributeError):
        secret._value = "other"  # type: ignore[misc]
    assert secret == Secret(VALUE) and secret != Secret("other")
    assert copy.deepcopy(secret) is secret


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("env:OPENAI_API_KEY", "env:OPENAI_API_KEY"),
        ("file:/run/secrets/openai", "file:/run/secrets/openai"),
        ("vault:kv/llm/openai#api_key", "vault:kv/llm/openai#api_key"),
        ("vault:kv/llm/openai#api_key?version=3", "vault:kv/llm/openai#api_key?version=3"),
        ("vault-kv1:secret/llm#key", "vault-kv1:secret/llm#key"),
    ],
)
def test_references_parse_and_print_as_themselves(text: str, shown: str) -> None:
    assert str(parse_ref(text)) == shown


@pytest.mark.parametrize(
    "text",
    ["sk-abc123", "env:", "file:relative/path", "vault:kv-no-field", "vault-kv1:a/b#c?version=2"],
)
def test_bad_references_are_refused_without_echoing_them(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_ref(text)
    assert text not in str(caught.value) or text in ("env:",)
