"""A static rule checker for the Dockerfile (there is no Docker engine on the build machines).

``check(dockerfile_text, install_script_text)`` returns the violations, each naming its rule and
line. Rules:

- ``from-digest``: every ``FROM`` names an image pinned by ``@sha256:<64 hex>`` (or an earlier
  stage by its name);
- ``syntax-digest``: a ``# syntax=`` parser directive (BuildKit pulls that frontend image before
  it reads the file) names an image pinned by digest too;
- ``user``: the final stage's last ``USER`` is a fixed numeric, non-root UID (and numeric GID);
- ``remote-add``: no ``ADD`` of a URL or a git repository;
- ``hashed-install``: every ``pip install`` (in a ``RUN``, or in ``docker/install.sh`` when a
  ``RUN`` calls it) uses ``--require-hashes``, or installs the local project with ``--no-index``;
- ``healthcheck``: the final stage has a ``HEALTHCHECK`` on ``/health/live`` that needs no curl
  or wget (the image carries neither);
- ``no-installer``: the final stage runs no pip, ensurepip or package-manager install;
- ``base-installer``: a final stage built on an official ``python`` image removes what that image
  ships to install packages: pip, setuptools and the standard library's ``ensurepip`` (which
  carries a pip wheel of its own). The venv never sees them, but nothing in the image should be
  able to install a package.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

INSTALL_SCRIPT = "docker/install.sh"
_BASE_INSTALLERS = ("site-packages/pip", "site-packages/setuptools", "/ensurepip")
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z]+)\s*=\s*(\S*)\s*$")
_PIP_INSTALL = re.compile(r"\bpip(?:3(?:\.\d+)?)?\b[^|;&]*?\binstall\b")
_INSTALLER = re.compile(
    r"\bpip(?:3(?:\.\d+)?)?\s+install\b|-m\s+pip\b|-m\s+ensurepip\b|\bapt(?:-get)?\s+install\b"
    r"|\bapk\s+add\b"
)


@dataclass(frozen=True)
class Violation:
    rule: str
    line: int
    message: str


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    args: str


def instructions(text: str) -> list[Instruction]:
    """Logical instructions: comments dropped, backslash continuations joined."""
    result: list[Instruction] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        buffer += stripped
        keyword, _, args = buffer.partition(" ")
        result.append(Instruction(start, keyword.upper(), args.strip()))
        buffer = ""
    return result


def _directives(text: str) -> list[tuple[int, str, str]]:
    """Parser directives: ``# key=value`` lines at the very top, before any other line."""
    found = []
    for number, raw in enumerate(text.splitlines(), start=1):
        match = _DIRECTIVE.match(raw.strip())
        if match is None:
            break
        found.append((number, match.group(1).lower(), match.group(2)))
    return found


def _stages(items: list[Instruction]) -> list[list[Instruction]]:
    stages: list[list[Instruction]] = []
    for item in items:
        if item.keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(item)
    return stages


def _shell_logical_lines(script: str) -> list[str]:
    lines, buffer = [], ""
    for raw in script.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        lines.append(buffer + stripped)
        buffer = ""
    return lines


def _expand(line: str, script_lines: list[str]) -> str:
    """Replace ``${name[@]}`` / ``$name`` with the script's assignment to ``name``, once."""
    assignments: dict[str, str] = {}
    joined = "\n".join(script_lines)
    for match in re.finditer(r"^(\w+)=\((.*?)\)", joined, flags=re.M | re.S):
        assignments[match.group(1)] = match.group(2)
    for match in re.finditer(r"^(\w+)=([^(\n].*)$", joined, flags=re.M):
        assignments.setdefault(match.group(1), match.group(2))

    def value(m: re.Match[str]) -> str:
        return assignments.get(m.group(1) or m.group(2), m.group(0))

    return re.sub(r"\$\{(\w+)(?:\[@\])?\}|\$(\w+)", value, line)


def _hashed(command: str) -> bool:
    return "--require-hashes" in command or "--no-index" in command


def check(dockerfile: str, install_script: str | None = None) -> list[Violation]:
    items = instructions(dockerfile)
    stages = _stages(items)
    violations: list[Violation] = []
    for line, key, value in _directives(dockerfile):
        if key == "syntax" and not _DIGEST.search(value):
            message = f"# syntax={value} pulls a frontend image not pinned by sha256 digest"
            violations.append(Violation("syntax-digest", line, message))
    names: set[str] = set()
    for stage in stages:
        head = stage[0]
        words = head.args.split()
        image = words[0] if words else ""
        if image.lower() not in names and not _DIGEST.search(image):
            violations.append(
                Violation("from-digest", head.line, f"FROM {image} is not pinned by sha256 digest")
            )
        if len(words) >= 3 and words[1].upper() == "AS":
            names.add(words[2].lower())
    for item in items:
        if item.keyword == "ADD" and re.search(r"(?i)\b(https?|ftp|git)://|git@", item.args):
            violations.append(Violation("remote-add", item.line, "ADD fetches a remote source"))
        if item.keyword == "RUN":
            violations += _check_run(item, install_script)
    if not stages:
        return [*violations, Violation("user", 0, "no FROM: no stage at all")]
    final = stages[-1]
    users = [i for i in final if i.keyword == "USER"]
    if not users:
        violations.append(Violation("user", final[0].line, "the final stage sets no USER"))
    else:
        user, _, group = users[-1].args.partition(":")
        if not user.isdigit() or int(user) == 0 or (group and not group.isdigit()):
            violations.append(
                Violation(
                    "user", users[-1].line, f"USER {users[-1].args} is not a numeric non-root UID"
                )
            )
    checks = [i for i in final if i.keyword == "HEALTHCHECK"]
    if not checks:
        violations.append(
            Violation("healthcheck", final[0].line, "the final stage has no HEALTHCHECK")
        )
    for item in checks:
        if "/health/live" not in item.args or re.search(r"\b(curl|wget)\b", item.args):
            violations.append(
                Violation(
                    "healthcheck",
                    item.line,
                    "HEALTHCHECK must probe /health/live without curl/wget",
                )
            )
    for item in final:
        if item.keyword == "RUN" and _INSTALLER.search(item.args):
            violations.append(
                Violation("no-installer", item.line, "the final stage runs an installer")
            )
    violations += _check_base_installers(final)
    return violations


def _check_base_installers(final: list[Instruction]) -> list[Violation]:
    image = (final[0].args.split() or [""])[0]
    if not re.match(r"^(docker\.io/)?(library/)?python[:@]", image):
        return []
    removals = " ".join(
        item.args for item in final if item.keyword == "RUN" and re.search(r"\brm\b", item.args)
    )
    kept = [path for path in _BASE_INSTALLERS if path not in removals]
    if not kept:
        return []
    message = f"the final stage keeps the base image's {', '.join(kept)}"
    return [Violation("base-installer", final[0].line, message)]


def _check_run(item: Instruction, install_script: str | None) -> list[Violation]:
    found: list[Violation] = []
    for command in re.split(r"&&|;|\|\|", item.args):
        if _PIP_INSTALL.search(command) and not _hashed(command):
            found.append(Violation("hashed-install", item.line, "pip install without hashes"))
    if INSTALL_SCRIPT in item.args:
        if install_script is None:
            found.append(Violation("hashed-install", item.line, f"{INSTALL_SCRIPT} not given"))
        else:
            lines = _shell_logical_lines(install_script)
            for line in lines:
                if _PIP_INSTALL.search(line) and not _hashed(_expand(line, lines)):
                    found.append(
                        Violation(
                            "hashed-install",
                            item.line,
                            f"{INSTALL_SCRIPT}: pip install without hashes: {line.strip()[:60]}",
                        )
                    )
    return found
