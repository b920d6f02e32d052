"""``sealgate config import-litellm``: a LiteLLM proxy config written as a Sealgate config.

The conversion is ``gateway.config.litellm`` (pure); here the file is read, the result is checked
with the loader ``serve`` uses (so what is written is a config Sealgate starts with), written out,
and every note goes to stderr, one a line: ``<file>:<line>: <key>: not carried over: <why>``.
Exit 0: written and nothing lost; 1: written, with settings not carried over; 2: the file cannot
be read or converted, or the result does not validate.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from gateway.config.litellm import LiteLLMConfigError, convert
from gateway.errors import ConfigError
from gateway.serve import parse_config

HEADER = "# Written by 'sealgate config import-litellm' from {source}.\n"


def render(config: dict[str, Any], source: str) -> str:
    body = yaml.safe_dump(config, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return HEADER.format(source=source) + body


def import_litellm(path: str, output: str | None) -> int:
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        print(f"sealgate: {path}: cannot be read: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        conversion = convert(text)
    except LiteLLMConfigError as exc:
        print(f"sealgate: {path}: {exc}", file=sys.stderr)
        return 2
    for note in conversion.notes:
        print(note.render(path), file=sys.stderr)
    if not conversion.config.get("deployments"):
        print(f"sealgate: {path}: no model could be carried over", file=sys.stderr)
        return 2
    written = render(conversion.config, Path(path).name)
    try:
        parse_config(written, "<imported config>")
    except ConfigError as exc:
        print(f"sealgate: the imported config does not validate: {exc}", file=sys.stderr)
        return 2
    if output is None:
        sys.stdout.write(written)
    else:
        try:
            Path(output).write_text(written, "utf-8")
        except OSError as exc:
            print(f"sealgate: {output}: cannot be written: {exc.strerror}", file=sys.stderr)
            return 2
    lost = sum(not note.carried for note in conversion.notes)
    count = len(conversion.config["deployments"])
    print(
        f"sealgate: config import-litellm: {count} deployment(s) written, "
        f"{lost} setting(s) not carried over",
        file=sys.stderr,
    )
    return 1 if lost else 0
