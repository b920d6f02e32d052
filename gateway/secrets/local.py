"""Resolvers for secrets the operator hands the process directly: environment and files.

A variable named by an ``env:`` reference is taken out of the process environment the first time
it is read, which ``build_broker`` does at start-up for every ``env:`` reference in the config,
and kept in memory as a Secret from then on: a child process started later does not inherit it,
and code that reads ``os.environ`` later does not find it. (The environment block the kernel
shows in /proc/self/environ is the one the process started with; removing a variable does not
change it.) A file is read at use time (on a cache miss), so a rotated file is picked up within
the broker's TTL. Errors name the reference, never a value.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterable
from pathlib import Path

from gateway.refs import CredentialRef
from gateway.secrets.errors import BackendUnavailable, SecretMissing
from gateway.secrets.secret import Secret

_taken: dict[str, Secret] = {}
_taking = threading.Lock()


def take_from_environment(name: str) -> Secret | None:
    """The variable ``name``: removed from ``os.environ`` when found there, and served from
    memory after that (a value set in the environment again replaces it). None: it was never
    set, or set empty."""
    with _taking:
        value = os.environ.pop(name, None)
        if value is not None:
            if value.strip():
                _taken[name] = Secret(value.strip())
            else:
                _taken.pop(name, None)
        return _taken.get(name)


class EnvResolver:
    """Serves ``env:`` references from what start-up took out of the environment. ``needed``
    names the variables the config refers to (a reload may change it): readiness shows the ones
    that are not set, and the replica is not ready while any is missing."""

    def __init__(self, needed: Iterable[str] = ()) -> None:
        self.needed = sorted(set(needed))

    @property
    def unset(self) -> list[str]:
        return [name for name in self.needed if take_from_environment(name) is None]

    async def fetch(self, ref: CredentialRef) -> Secret:
        secret = take_from_environment(ref.target)
        if secret is None:
            raise SecretMissing(f"{ref}: the variable was not set, or empty, at start-up")
        return secret

    async def health(self) -> dict[str, object]:
        unset = self.unset
        if unset:
            return {"ok": False, "unset": unset}
        return {"ok": True}

    async def close(self) -> None:
        return None


class FileResolver:
    async def fetch(self, ref: CredentialRef) -> Secret:
        try:
            value = (await asyncio.to_thread(Path(ref.target).read_text, "utf-8")).strip()
        except FileNotFoundError:
            raise SecretMissing(f"{ref}: no such file") from None
        except UnicodeDecodeError:
            raise SecretMissing(f"{ref}: the file is not UTF-8 text") from None
        except OSError as exc:
            raise BackendUnavailable(f"{ref}: cannot be read ({exc.strerror})") from None
        if not value:
            raise SecretMissing(f"{ref}: the file is empty")
        return Secret(value)

    async def health(self) -> dict[str, object]:
        return {"ok": True}

    async def close(self) -> None:
        return None
