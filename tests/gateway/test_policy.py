"""The request policy is deny by default; steering fields are refused by name."""

from __future__ import annotations

import pytest

from gateway.api import validation as policy
from gateway.errors import InvalidRequest

HI = [{"role": "user", "content": "hi"}]


def test_a_plain_chat_body_passes_and_names_its_model() -> None:
    assert policy.check_chat({"model": "m", "messages": HI, "temperature": 0.5}) == "m"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": HI}, "model"),
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": ["hi"]}, "messages[0]"),
        ({"model": "m", "messages": HI, "n": 0}, "n"),
        ({"model": "m", "messages": HI, "n": True}, "n"),
        ({"model": "m", "messages": HI, "max_tokens": "10"}, "max_tokens"),
        ({"model": "m", "messages": HI, "stream": "yes"}, "stream"),
        (
            {"model": "m", "messages": HI, "stream_options": {"include_usage": True}},
            "stream_options",
        ),
        ({"model": "m", "messages": HI, "api_base": "http://x"}, "api_base"),
        ({"model": "m", "messages": HI, "whatever": 1}, "whatever"),
    ],
)
def test_bad_chat_bodies_are_refused_naming_the_parameter(
    body: dict[str, object], param: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        policy.check_chat(body)
    assert caught.value.param == param


def test_embeddings_need_input() -> None:
    assert policy.check_embeddings({"model": "e", "input": "text"}) == "e"
    with pytest.raises(InvalidRequest):
        policy.check_embeddings({"model": "e", "input": ""})
