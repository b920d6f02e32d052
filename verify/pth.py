"""Start-up hooks: ``*.pth`` files in the site directories, ``sitecustomize``, ``usercustomize``.

Python's ``site`` module executes every line of a ``.pth`` file that starts with ``import``
(PYSEC-2026-2 hid a credential stealer in such a line). Each ``.pth`` is judged by its owner
(the distribution whose RECORD lists it), whether it executes code, and its name, owner and
sha256 against ``policies/pth-allowlist.yaml``. Being listed in a RECORD proves nothing about
intent: the malicious release listed its own ``.pth``; only the allowlist hash accepts a file.

In Sealgate's install layout the dependencies live in a private library that no interpreter
start processes, so a ``.pth`` or ``sitecustomize`` shipped there never runs. It is still a
finding, said to be inert: a dependency that ships a start-up hook is one to look at before it
is locked again.
"""

from __future__ import annotations

import csv
import os
import re
import unicodedata
from collections.abc import Iterable

from verify.facts import EnvFacts, Hook, PthFile
from verify.findings import Finding, Severity, finding, ok
from verify.lockfile import normalize
from verify.policies import PthPolicy

CHECK = "pth"
SUSPICIOUS = (
    "exec",
    "eval",
    "compile",
    "base64",
    "marshal",
    "zlib",
    "codecs",
    "subprocess",
    "socket",
    "urllib",
    "http",
    "requests",
    "os.system",
    "__import__",
    "ctypes",
)
_IMPORT_LINE = re.compile(r"^import[ \t]")


def executes(content: str) -> bool:
    """True when ``site`` would exec some line (it execs lines starting with 'import ')."""
    return any(_IMPORT_LINE.match(line) for line in content.splitlines())


def suspicious(content: str) -> list[str]:
    return [word for word in SUSPICIOUS if word in content]


def owners(facts: EnvFacts) -> dict[str, str]:
    """Absolute path -> name of the distribution whose RECORD lists it."""
    owned: dict[str, str] = {}
    for dist in facts.dists:
        if dist.record is None:
            continue
        for row in csv.reader(dist.record.splitlines()):
            if row and row[0]:
                owned[os.path.normpath(os.path.join(dist.dir, row[0]))] = normalize(
                    dist.name or "?"
                )
    return owned


def _fold(name: str) -> str:
    return re.sub(r"[-_.\s]+", "", unicodedata.normalize("NFKC", name)).casefold()


def odd_name(name: str, allowed: Iterable[str]) -> str | None:
    """Why a file name looks hidden or like an allowed name, or None."""
    if name.startswith("."):
        return "hidden file name"
    if not name.isascii() or not name.isprintable():
        return "non-ASCII or non-printable characters in the name"
    for good in allowed:
        if name != good and _fold(name) == _fold(good):
            return f"name looks like allowlisted {good!r}"
    return None


INERT = "in the private library, which no start processes (inert here)"


def check_pth(pth: PthFile, owner: str | None, policy: PthPolicy, inert: bool = False) -> Finding:
    content = pth.content or ""
    runs = executes(content)
    kind = "executes code (import line)" if runs else "adds paths only"
    if inert:
        kind += f"; {INERT}"
    allowed_names = [a.name for a in policy.pth]
    odd = odd_name(pth.name, allowed_names)
    if odd is not None:
        return finding(
            CHECK,
            pth.path,
            Severity.CRITICAL if runs else Severity.HIGH,
            f"{odd}; {kind}; owner {owner or 'none'}",
            "remove the file and find out how it got there",
        )
    for allowed in policy.pth:
        if (
            allowed.name == pth.name
            and allowed.sha256 == pth.sha256
            and normalize(allowed.owner) == owner
        ):
            return ok(CHECK, pth.path, f"allowlisted ({allowed.why}); {kind}")
    markers = suspicious(content) if runs else []
    severity = Severity.CRITICAL if runs else Severity.MEDIUM
    reason = f"not on the allowlist; {kind}; owner {owner or 'none (no RECORD lists it)'}"
    if any(a.name == pth.name for a in policy.pth):
        reason = f"allowlisted name with different content or owner; {kind}; owner {owner}"
    if markers:
        reason += "; suspicious content: " + ", ".join(markers)
    return finding(
        CHECK,
        pth.path,
        severity,
        reason,
        "uninstall the distribution that ships it; if it is legitimate, add its name, owner "
        "and sha256 to policies/pth-allowlist.yaml after review",
    )


def check_hook(hook: Hook, policy: PthPolicy, inert: bool = False) -> Finding:
    for allowed in policy.hooks:
        if allowed.module == hook.module and allowed.sha256 == hook.sha256:
            return ok(CHECK, hook.path, f"allowlisted {hook.module} ({allowed.why})")
    reason = f"{hook.module} runs on every interpreter start and is not on the allowlist"
    if inert:
        reason = f"{hook.module} shipped {INERT}; not on the allowlist"
    return finding(
        CHECK,
        hook.path,
        Severity.CRITICAL,
        reason,
        f"remove {hook.path}; if it is legitimate, add it to policies/pth-allowlist.yaml hooks",
    )


def _inert(facts: EnvFacts, path: str) -> bool:
    private = facts.private_dir
    return private is not None and os.path.normpath(path).startswith(private + os.sep)


def run(facts: EnvFacts, policy: PthPolicy) -> list[Finding]:
    owned = owners(facts)
    results = [
        check_pth(p, owned.get(os.path.normpath(p.path)), policy, _inert(facts, p.path))
        for p in facts.pth
    ]
    results += [check_hook(h, policy, _inert(facts, h.path)) for h in facts.hooks]
    if not results:
        results.append(ok(CHECK, facts.prefix, "no .pth files and no customize hooks"))
    return results
