"""Resolvers for secrets the operator hands the process directly: environment and files.

Both read at use time (on a cache miss), so a rotated file or variable is picked up within the
broker's TTL. Errors name the reference, never a value.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from gateway.secrets.errors import BackendUnavailable, SecretMissing
from gateway.secrets.refs import CredentialRef
from gateway.secrets.secret import Secret


class EnvResolver:
    async def fetch(self, ref: CredentialRef) -> Secret:
        value = os.environ.get(ref.target, "").strip()
        if not value:
            raise SecretMissing(f"{ref}: the variable is not set or empty")
        return Secret(value)

    async def health(self) -> dict[str, object]:
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
