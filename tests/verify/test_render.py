"""Rendering: SARIF output is valid against the OASIS SARIF 2.1.0 schema, with valid URIs."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import jsonschema

from verify import render
from verify.findings import Finding, Report, Severity, Status, finding, ok

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "sarif"
SCHEMA = ASSETS / "sarif-schema-2.1.0.json"
SCHEMA_SHA256 = "c3b4bb2d6093897483348925aaa73af03b3e3f4bd4ca38cef26dcb4212a2682e"
# RFC 3986 URI-reference, character level: unreserved, sub-delims, ":", "@", "/", "?", "#" and
# percent-encoded octets only, an optional scheme first.
URI_REFERENCE = re.compile(
    r"^(?:[A-Za-z][A-Za-z0-9+.-]*:)?(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*"
    r"(?:#(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*)?$"
)
PATHS = [
    "/venv/lib/python3.11/site-packages/zz telemetry.pth",
    "/venv/lib/python3.11/site-packages/ünïcode#x%41.pth",
    "/venv/lib/sealgate-deps/a?b[c].py",
]


def report() -> Report:
    items: list[Finding] = [
        finding("pth", p, Severity.CRITICAL, "not on the allowlist", "remove it") for p in PATHS
    ]
    items += [
        finding("lock", "pytest", Severity.HIGH, "pytest 9.0 is not in the lock", "rebuild"),
        finding("manifest", "goodpkg==1.0", Severity.CRITICAL, "differs", "rebuild"),
        finding("record", "sealgate 0.1.0 (x.dist-info)", Severity.MEDIUM, "why", "rebuild"),
        Finding("vulns", "C:odd", Status.SKIPPED, Severity.LOW, "could not audit", "retry"),
        ok("lock", "pyyaml", "6.0.3 as locked"),
    ]
    return Report(tuple(items), 0.1)


def sarif() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(render.sarif(report()))
    return doc


def test_the_committed_schema_is_the_oasis_file_it_says_it_is() -> None:
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256


def test_sarif_output_validates_against_the_sarif_2_1_0_schema() -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft4Validator.check_schema(schema)
    jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker()).validate(sarif())
    assert sarif()["$schema"] == schema["id"]


def _uris(doc: dict[str, Any]) -> list[str]:
    return [
        loc["physicalLocation"]["artifactLocation"]["uri"]
        for result in doc["runs"][0]["results"]
        for loc in result["locations"]
    ]


def test_every_artifact_uri_is_a_valid_percent_encoded_uri_reference() -> None:
    uris = _uris(sarif())
    assert len(uris) == len(report().problems)
    for uri in uris:
        assert URI_REFERENCE.match(uri), uri
    assert uris[0] == "file:///venv/lib/python3.11/site-packages/zz%20telemetry.pth"


def test_a_file_uri_decodes_back_to_the_exact_path_it_names() -> None:
    for uri, path in zip(_uris(sarif()), PATHS, strict=False):
        parts = urlsplit(uri)
        assert (parts.scheme, parts.netloc, parts.query, parts.fragment) == ("file", "", "", "")
        assert unquote(parts.path) == path


def test_a_subject_that_is_no_path_is_a_relative_reference_without_a_scheme() -> None:
    uris = _uris(sarif())[len(PATHS) :]
    assert uris == ["pytest", "goodpkg==1.0", "sealgate", "C%3Aodd"]
    assert all(urlsplit(u).scheme == "" for u in uris)
