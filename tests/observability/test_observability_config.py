"""The observability settings (issue 17): checked strictly like the rest of the config, and
neither tracing nor the access log switch changes on a reload (they need a restart)."""

from __future__ import annotations

import pytest

from gateway.errors import ConfigError
from gateway.reload import restart_only_changes
from gateway.serve import parse_config

BASE = "deployments: [{model: m, provider: mock}]\n"
S3 = "sinks: [{name: a, type: s3, endpoint: 'https://s3.example.com', bucket: b-1, "


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ("tracing: {endpoint: 'ftp://collector/v1/traces'}", "http(s) URL"),
        ("tracing: {endpoint: 'http://user:pw@collector/v1/traces'}", "no credentials"),
        ("tracing: {headers: {authorization: 'Bearer abcdef'}}", "reference"),
        ("tracing: {headers: {x-token: 'vault:kv/otel#token'}}", "only env: and file:"),
        ("tracing: {headers: {'bad header': 'env:X'}}", "not a valid HTTP header name"),
        ("tracing: {sample_ratio: 1.5}", "less than or equal to 1"),
        ("tracing: {colour: blue}", "not a known key"),
        ("logging: {access_log: maybe}", "boolean"),
        (
            "sinks: [{name: s, type: webhook, url: 'https://h/x', secret: whsec-abcdef}]",
            "reference",
        ),
        ("sinks: [{name: s, type: webhook, url: 'ftp://h/x', secret: 'env:S'}]", "http(s) URL"),
        ("sinks: [{name: s, type: webhook, url: 'https://u:pw@h/x', secret: 'env:S'}]", "no cred"),
        (
            "sinks: [{name: s, type: carrier_pigeon, url: 'https://h/x', secret: 'env:S'}]",
            "webhook",
        ),
        (
            "sinks: [{name: 'Bad Name', type: webhook, url: 'https://h/x', secret: 'env:S'}]",
            "pattern",
        ),
        ("sinks: [{name: s, type: webhook, url: 'http://10.0.0.8/x', secret: 'env:S'}]", "private"),
        ("sinks: [{name: s, type: webhook, url: 'https://h/x', secret: 'vault:kv/a#b'}]", "vault"),
        (S3 + "access_key_id: AKIAABCDEF, secret_access_key: 'env:K'}]", "reference"),
        (S3 + "access_key_id: 'env:I', secret_access_key: abcdef}]", "reference"),
        (S3 + "access_key_id: 'env:I', secret_access_key: 'env:K', bucket: 'A B'}]", "pattern"),
        (S3 + "access_key_id: 'env:I', secret_access_key: 'env:K', prefix: 'a b'}]", "pattern"),
        (S3 + "access_key_id: 'env:I'}]", "Field required"),
        (
            "sinks: [{name: s, type: webhook, url: 'https://h/x', secret: 'env:S', batch_size: 0}]",
            "greater than or equal to 1",
        ),
    ],
)
def test_a_bad_observability_setting_is_refused_naming_the_key(section: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE + section + "\n", "gw.yaml")
    text = str(caught.value)
    assert "gw.yaml" in text and problem in text
    assert "abcdef" not in text and "pw@" not in text


def test_two_sinks_with_one_name_are_refused_naming_the_second_and_its_line() -> None:
    sink = "  - {name: siem, type: webhook, url: 'https://h/x', secret: 'env:S'}\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE + "sinks:\n" + sink + sink, "gw.yaml")
    assert "sinks.1.name (line 4)" in str(caught.value)
    assert "already used by sinks.0" in str(caught.value)


def test_the_sinks_change_only_on_a_restart() -> None:
    old = parse_config(BASE, "old.yaml")
    sink = "sinks: [{name: s, type: webhook, url: 'https://h/x', secret: 'env:S'}]\n"
    assert restart_only_changes(old, parse_config(BASE + sink, "new.yaml")) == ["sinks"]


def test_tracing_and_the_access_log_switch_change_only_on_a_restart() -> None:
    old = parse_config(BASE, "old.yaml")
    traced = parse_config(BASE + "tracing: {enabled: true}\n", "new.yaml")
    quiet = parse_config(BASE + "logging: {access_log: false}\n", "new.yaml")
    louder = parse_config(BASE + "logging: {level: debug}\n", "new.yaml")
    assert restart_only_changes(old, traced) == ["tracing"]
    assert restart_only_changes(old, quiet) == ["logging.access_log"]
    assert restart_only_changes(old, louder) == []
