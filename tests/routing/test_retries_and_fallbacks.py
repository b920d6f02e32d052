"""Retries, fallbacks by error class and the breaker, against real upstreams on loopback that
fail in scripted patterns: 500s, 429s with Retry-After, context-window and content-policy
refusals, a stream cut after its first event, and a deployment that recovers."""

from __future__ import annotations

import asyncio
import random
import re
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.config.routing import Backoff, Breaker
from gateway.errors import (
    InvalidRequest,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
)
from gateway.routing.breaker import Breakers
from gateway.routing.retries import backoff, error_class
from gateway.store.keys import KeyRecord
from tests.routing.conftest import BODY, Clock, Routing, config, deployment, served
from tests.support.fake_upstream import FakeUpstream

pytestmark = pytest.mark.anyio


def test_backoff_stays_within_its_exponential_ceiling_and_spreads_over_it() -> None:
    settings = Backoff(base_seconds=0.1, max_seconds=1.0)
    rng = random.Random(11)
    for retry, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (9, 1.0)]:
        waits = [backoff(retry, settings, rng) for _ in range(2000)]
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > 0.9 * ceiling  # full jitter: the whole range is used ...
        assert abs(sum(waits) / len(waits) - ceiling / 2) < 0.05 * ceiling  # ... evenly


async def test_a_429_with_retry_after_is_retried_on_the_same_deployment_once_it_has_waited(
    upstreams: dict[str, FakeUpstream], routing: Routing
) -> None:
    a = upstreams["a"]
    a.then(status=429, headers={"Retry-After": "1"})
    r = routing.router(config([deployment("m", a, "a")], {"retries": 1}))
    started = time.monotonic()
    _, served_by = await r.chat("m", BODY)
    assert served_by.name == "a" and len(a.requests) == 2
    assert time.monotonic() - started >= 1.0  # it waited what the upstream asked


async def test_a_retry_after_over_the_cap_is_not_waited_for(
    upstreams: dict[str, FakeUpstream], routing: Routing
) -> None:
    a = upstreams["a"]
    a.then(status=429, headers={"Retry-After": "60"})
    router = {"retries": 1, "backoff": {"retry_after_max_seconds": 5}}
    r = routing.router(config([deployment("m", a, "a")], router))
    with pytest.raises(UpstreamRateLimited):
        await r.chat("m", BODY)
    assert len(a.requests) == 1


async def test_a_retry_after_that_would_end_past_the_deadline_is_not_waited_for(
    upstreams: dict[str, FakeUpstream], routing: Routing
) -> None:
    a = upstreams["a"]
    a.then(status=429, headers={"Retry-After": "4"})
    short = deployment("m", a, "a", timeouts={"connect": 1, "read": 2, "total": 2})
    r = routing.router(config([short], {"retries": 1}))
    with pytest.raises(UpstreamRateLimited):
        await r.chat("m", BODY)
    assert len(a.requests) == 1


async def test_retries_go_to_another_deployment_after_a_500(
    upstreams: dict[str, FakeUpstream], routing: Routing
) -> None:
    a, b = upstreams["a"], upstreams["b"]
    a.default.status = 500
    b.default.status = 500
    cfg = config([deployment("m", a, "a"), deployment("m", b, "b")], {"retries": 1})
    r = routing.router(cfg)
    with pytest.raises(UpstreamError):
        await r.chat("m", BODY)
    assert served(upstreams) == {"a": 1, "b": 1, "c": 0}


def three_groups(upstreams: dict[str, FakeUpstream], fallbacks: dict[str, Any]) -> Any:
    return config(
        [
            deployment("m", upstreams["a"], "a"),
            deployment("big", upstreams["b"], "b"),
            deployment("safe", upstreams["c"], "c"),
        ],
        {"retries": 0, "groups": {"m": {"fallbacks": fallbacks}}},
    )


FALLBACKS = {
    "general": ["big"],
    "context_window": ["big"],
    "content_policy": ["safe"],
    "rate_limited": ["safe"],
}


@pytest.mark.parametrize(
    ("failure", "fallback"),
    [
        ({"status": 400, "error_code": "context_length_exceeded"}, "b"),
        ({"status": 400, "error_code": "content_policy_violation"}, "c"),
        ({"status": 400, "error_code": "content_filter"}, "c"),
        ({"status": 429}, "c"),
        ({"status": 500}, "b"),
        ({"status": 503}, "b"),
    ],
    ids=["context_window", "content_policy", "content_filter", "rate_limited", "500", "503"],
)
async def test_each_error_class_falls_back_to_its_own_groups(
    upstreams: dict[str, FakeUpstream],
    routing: Routing,
    failure: dict[str, Any],
    fallback: str,
) -> None:
    upstreams["a"].then(**failure)
    r = routing.router(three_groups(upstreams, FALLBACKS))
    _, served_by = await r.chat("m", BODY)
    assert served_by.name == fallback
    assert served(upstreams)["a"] == 1


async def test_a_bad_request_of_no_fallback_class_is_final(
    upstreams: dict[str, FakeUpstream], routing: Routing
) -> None:
    upstreams["a"].then(status=400, error_code="invalid_value")
    r = routing.router(three_groups(upstreams, FALLBACKS))
    with pytest.raises(UpstreamRejected):
        await r.chat("m", BODY)
    assert served(upstreams) == {"a": 1, "b": 0, "c": 0}


async def test_a_context_window_refusal_without_its_fallback_is_final_not_the_general_one(
    upstreams: dict[str, FakeUpstream], routing: Routing
) -> None:
    upstreams["a"].then(status=400, error_code="context_length_exceeded")
    r = routing.router(three_groups(upstreams, {"general": ["big"]}))
    with pytest.raises(UpstreamRejected):
        await r.chat("m", BODY)
    assert served(upstreams) == {"a": 1, "b": 0, "c": 0}


async def test_a_rate_limited_group_uses_the_general_fallbacks_when_it_has_none_of_its_own(
    upstreams: dict[str, FakeUpstream], routing: Routing
) -> None:
    upstreams["a"].then(status=429)
    r = routing.router(three_groups(upstreams, {"general": ["big"]}))
    _, served_by = await r.chat("m", BODY)
    assert served_by.name == "b"


def test_anthropics_prompt_too_long_wording_is_a_context_window_failure() -> None:
    exc = UpstreamRejected(
        "deployment x rejected the request: prompt is too long: 210000 tokens > 200000 maximum",
        upstream_status=400,
        code="invalid_request_error",
    )
    assert error_class(exc) == "context_window"


async def test_a_stream_is_not_retried_once_its_first_event_reached_the_client(
    upstreams: dict[str, FakeUpstream], routing: Routing
) -> None:
    a, b = upstreams["a"], upstreams["b"]
    a.then(cut_after=1)
    r = routing.router(config([deployment("m", a, "a"), deployment("m", b, "b")], {}))
    stream, served_by = await r.chat_stream("m", {**BODY, "stream": True})
    assert served_by.name == "a"
    got: list[bytes] = []

    async def read() -> None:
        async for chunk in stream.chunks():
            got.append(chunk)

    with pytest.raises(UpstreamError):
        await read()
    await stream.aclose()
    assert len(got) == 1
    assert served(upstreams) == {"a": 1, "b": 0, "c": 0}


async def test_a_stream_that_fails_before_its_first_byte_is_retried_elsewhere(
    upstreams: dict[str, FakeUpstream], routing: Routing
) -> None:
    a, b = upstreams["a"], upstreams["b"]
    a.then(status=500)
    r = routing.router(config([deployment("m", a, "a"), deployment("m", b, "b")], {}))
    stream, served_by = await r.chat_stream("m", {**BODY, "stream": True})
    assert served_by.name == "b"
    assert b"".join([c async for c in stream.chunks()]).endswith(b"data: [DONE]\n\n")
    await stream.aclose()


async def test_the_breaker_opens_after_n_failures_probes_half_open_once_and_closes_on_success(
    upstreams: dict[str, FakeUpstream], routing: Routing
) -> None:
    a, b = upstreams["a"], upstreams["b"]
    a.default.status = 500
    clock = Clock()
    cfg = config(
        [deployment("m", a, "a"), deployment("m", b, "b")],
        {"retries": 1, "cooldown_seconds": 30, "breaker": {"failures": 2, "window_seconds": 60}},
    )
    r = routing.router(cfg, clock)
    while len(a.requests) < 2:  # round robin reaches a every other call
        _, served_by = await r.chat("m", BODY)
        assert served_by.name == "b"
        assert r.breakers.state("a") == ("open" if len(a.requests) == 2 else "closed")
    for _ in range(6):  # open: a is behind b, so b serves everything
        await r.chat("m", BODY)
    assert len(a.requests) == 2

    clock.now += 31  # half-open: the next request that picks a is its probe; it fails
    assert r.breakers.state("a") == "half_open"
    for _ in range(4):
        await r.chat("m", BODY)
    assert len(a.requests) == 3 and r.breakers.state("a") == "open"  # one probe, reopened

    clock.now += 31
    a.default.status = 200  # a recovers: the probe succeeds and closes the breaker
    names = [(await r.chat("m", BODY))[1].name for _ in range(4)]
    assert r.breakers.state("a") == "closed"
    assert names.count("a") == 2  # back in turn with b


async def test_a_half_open_breaker_lets_one_probe_through_at_a_time() -> None:
    clock = Clock()
    breakers = Breakers(Breaker(failures=1), cooldown=10, clock=clock)
    breakers.failed("a")
    assert not breakers.available("a")
    clock.now += 11
    assert breakers.available("a")
    assert await breakers.attempt("a")  # the probe
    assert not breakers.available("a")  # a second request does not pick it ahead of others
    breakers.succeeded("a")
    assert breakers.available("a") and breakers.state("a") == "closed"


def test_failures_older_than_the_window_do_not_open_the_breaker() -> None:
    clock = Clock()
    breakers = Breakers(Breaker(failures=2, window_seconds=10), cooldown=10, clock=clock)
    breakers.failed("a")
    clock.now += 11
    breakers.failed("a")
    assert breakers.state("a") == "closed"
    breakers.failed("a")
    assert breakers.state("a") == "open"


async def test_a_probe_that_is_cancelled_lets_the_next_request_probe(
    upstreams: dict[str, FakeUpstream], routing: Routing
) -> None:
    a = upstreams["a"]
    clock = Clock()
    r = routing.router(config([deployment("m", a, "a")], {"cooldown_seconds": 30}), clock)
    r.breakers.failed("a")
    clock.now += 31
    a.then(delay=5)  # the probe hangs, and its client goes away
    probe = asyncio.ensure_future(r.chat("m", BODY))
    while not a.requests:
        await asyncio.sleep(0.01)
    assert not r.breakers.available("a")  # the probe is in flight
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert r.breakers.available("a") and r.breakers.state("a") == "half_open"
    _, served_by = await r.chat("m", BODY)  # the next request is the probe, and closes it
    assert served_by.name == "a" and r.breakers.state("a") == "closed"


def key(metadata: dict[str, Any], models: tuple[str, ...] = ("*",)) -> KeyRecord:
    now = datetime.now(UTC)
    return KeyRecord("k1", "hash", models, metadata, now, None, None)


async def test_a_keys_own_fallbacks_stand_in_for_the_groups_for_their_class(
    upstreams: dict[str, FakeUpstream], routing: Routing
) -> None:
    r = routing.router(three_groups(upstreams, {"context_window": ["big"]}))
    upstreams["a"].then(status=400, error_code="context_length_exceeded")
    plan = r.plan("m", key=key({"fallbacks": {"context_window": ["safe"]}}))
    _, served_by = await r.chat("m", BODY, plan=plan)
    assert served_by.name == "c"  # the key's list, not the group's
    upstreams["a"].then(status=500)
    plan = r.plan("m", key=key({"fallbacks": {"general": ["safe"]}}))
    _, served_by = await r.chat("m", BODY, plan=plan)
    assert served_by.name == "c"  # the group has no general fallback; the key has
    assert served(upstreams) == {"a": 2, "b": 0, "c": 2}


async def test_a_groups_fallbacks_skip_the_models_the_key_may_not_use(
    upstreams: dict[str, FakeUpstream], routing: Routing
) -> None:
    r = routing.router(three_groups(upstreams, {"general": ["big", "safe"]}))
    upstreams["a"].then(status=500)
    plan = r.plan("m", key=key({}, ("m", "safe")))
    _, served_by = await r.chat("m", BODY, plan=plan)
    assert served_by.name == "c"  # not "big": this key may not use it
    upstreams["a"].then(status=500)
    with pytest.raises(UpstreamError):
        await r.chat("m", BODY, plan=r.plan("m", key=key({}, ("m",))))
    assert served(upstreams) == {"a": 2, "b": 0, "c": 1}


@pytest.mark.parametrize(
    ("fallbacks", "models", "says"),
    [
        ({"context_window": ["safe"]}, ("m",), "names model 'safe', which this key cannot use"),
        ({"context_window": ["nope"]}, ("*",), "names model 'nope', which this key cannot use"),
        ({"timeouts": ["safe"]}, ("*",), "names 'timeouts'; known: general, context_window"),
        ({"general": "safe"}, ("*",), "metadata.fallbacks.general must be a list of model names"),
        (["safe"], ("*",), "must map error classes to lists of models"),
    ],
)
async def test_a_keys_fallbacks_that_it_may_not_use_or_that_are_malformed_are_refused(
    upstreams: dict[str, FakeUpstream],
    routing: Routing,
    fallbacks: Any,
    models: tuple[str, ...],
    says: str,
) -> None:
    r = routing.router(three_groups(upstreams, {}))
    with pytest.raises(InvalidRequest, match=re.escape(says)):
        r.plan("m", key=key({"fallbacks": fallbacks}, models))
    assert served(upstreams) == {"a": 0, "b": 0, "c": 0}
