"""Known vulnerabilities of the locked pins, from an OSV-compatible service.

One ``POST <osv_url>`` (the OSV ``/v1/querybatch`` API) asks for every pin of the lock files
(all pins, whatever their markers: a lock is audited as a whole). A pin the service did not
answer for, because the request failed, timed out, or the reply was malformed or short, is an
``unaudited`` finding: "could not audit" is never reported as clean.

Why not pip-audit's library: pip-audit depends on pip, which the hardened image does not ship,
so it cannot be a runtime dependency; its OSV service sends one request per package. CI may run
``pip-audit --osv-url`` from the dev lock as a second opinion; this client serves both.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence

from verify.findings import Finding, Severity, finding, ok
from verify.lockfile import Pin

CHECK = "vulns"
DEFAULT_OSV_URL = "https://api.osv.dev/v1/querybatch"
DEFAULT_TIMEOUT_SECONDS = 20.0
Post = Callable[[str, bytes, float], bytes]


def urllib_post(url: str, body: bytes, timeout: float) -> bytes:
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"OSV URL must be http(s): {url}")
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        data: bytes = response.read()
        return data


def query_body(pins: Sequence[Pin]) -> bytes:
    queries = [
        {"package": {"name": p.name, "ecosystem": "PyPI"}, "version": p.version} for p in pins
    ]
    return json.dumps({"queries": queries}).encode()


def _ids(result: object) -> list[str] | None:
    if not isinstance(result, dict):
        return None
    vulns = result.get("vulns", [])
    if not isinstance(vulns, list) or not all(isinstance(v, dict) and "id" in v for v in vulns):
        return None
    return sorted(str(v["id"]) for v in vulns)


def unaudited(pin: Pin, why: str) -> Finding:
    return finding(
        CHECK,
        f"{pin.name}=={pin.version}",
        Severity.HIGH,
        f"unaudited: {why}",
        "re-run when the vulnerability service answers; do not treat this pin as clean",
    )


def audit(
    pins: Sequence[Pin],
    osv_url: str = DEFAULT_OSV_URL,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    post: Post = urllib_post,
) -> list[Finding]:
    unique = {(p.name, p.version): p for p in pins}
    ordered = list(unique.values())
    if not ordered:
        return []
    try:
        reply = json.loads(post(osv_url, query_body(ordered), timeout))
        results = reply["results"]
        if not isinstance(results, list):
            raise TypeError("results is not a list")
    except (OSError, urllib.error.URLError, ValueError, KeyError, TypeError) as exc:
        return [unaudited(p, f"lookup failed ({type(exc).__name__}: {exc})") for p in ordered]
    findings: list[Finding] = []
    for index, pin in enumerate(ordered):
        ids = _ids(results[index]) if index < len(results) else None
        subject = f"{pin.name}=={pin.version}"
        if ids is None:
            findings.append(unaudited(pin, "the service returned no usable answer for it"))
        elif isinstance(results[index], dict) and results[index].get("next_page_token"):
            findings.append(unaudited(pin, "the answer is paged and incomplete"))
        elif ids:
            findings.append(
                finding(
                    CHECK,
                    subject,
                    Severity.HIGH,
                    "known vulnerabilities: " + ", ".join(ids),
                    "upgrade to a fixed version and re-lock (scripts/lock)",
                )
            )
        else:
            findings.append(ok(CHECK, subject, "no known vulnerabilities"))
    return findings
