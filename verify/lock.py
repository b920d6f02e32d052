"""Lock conformance: the installed distributions equal the lock's pins for the target.

The lock's markers are evaluated against the target interpreter's marker environment, so a pin
for another platform or Python is not expected. The project's own distribution (``sealgate``,
installed editable) is expected in addition to the lock. Versions compare as strings after
normalizing names: a lock pins exact versions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from verify.facts import EnvFacts
from verify.findings import Finding, Severity, finding, ok
from verify.lockfile import Pin, normalize

CHECK = "lock"
PROJECT = "sealgate"
REMEDY = "rebuild the environment from the hash-locked files (make install)"


def run(
    facts: EnvFacts, pins: Mapping[str, Pin], extra_allowed: Iterable[str] = (PROJECT,)
) -> list[Finding]:
    installed: dict[str, list[str]] = {}
    for dist in facts.dists:
        installed.setdefault(normalize(dist.name or dist.dist_info), []).append(dist.version or "?")
    allowed = {normalize(n) for n in extra_allowed}
    results: list[Finding] = []
    for name in sorted(set(installed) | set(pins)):
        versions = installed.get(name, [])
        pin = pins.get(name)
        if len(versions) > 1:
            results.append(
                finding(CHECK, name, Severity.HIGH, f"installed more than once: {versions}", REMEDY)
            )
        elif pin is None and name in allowed:
            results.append(ok(CHECK, name, f"{versions[0]} is the project itself"))
        elif pin is None:
            results.append(
                finding(
                    CHECK, name, Severity.HIGH, f"{name} {versions[0]} is not in the lock", REMEDY
                )
            )
        elif not versions:
            results.append(
                finding(
                    CHECK, name, Severity.MEDIUM, f"locked {pin.version} is not installed", REMEDY
                )
            )
        elif versions[0] != pin.version:
            results.append(
                finding(
                    CHECK,
                    name,
                    Severity.HIGH,
                    f"installed {versions[0]}, lock pins {pin.version}",
                    REMEDY,
                )
            )
        else:
            results.append(ok(CHECK, name, f"{pin.version} as locked"))
    for name in sorted(allowed - set(installed)):
        results.append(
            finding(CHECK, name, Severity.MEDIUM, "the project itself is not installed", REMEDY)
        )
    return results
