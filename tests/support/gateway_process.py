"""Run the real gateway (``python -m gateway serve``) as a subprocess on a free loopback port.

Tests talk to it over real HTTP, with the official SDKs or httpx, and read what it wrote to
stderr afterwards (the leak checks search it).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

STARTUP_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class GatewayProcess:
    def __init__(
        self,
        workdir: Path,
        config: str | None = None,
        env: dict[str, str] | None = None,
        admin_key: str | None = None,
    ) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = workdir / "data"
        self.config_path: Path | None = None
        if config is not None:
            self.config_path = workdir / "config.yaml"
            self.config_path.write_text(config)
        self.admin_key = admin_key or "sga-test-" + secrets.token_urlsafe(24)
        self.port = free_port()
        self.stderr_path = workdir / "stderr.log"
        self.stdout_path = workdir / "stdout.log"
        self.extra_env = env or {}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "gateway", "serve", "--port", str(self.port)]
        cmd += ["--host", "127.0.0.1", "--data-dir", str(self.data_dir)]
        if self.config_path is not None:
            cmd += ["--config", str(self.config_path)]
        return cmd

    def start(self, wait: bool = True) -> GatewayProcess:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SEALGATE_", "VAULT_", "OPENAI_", "ANTHROPIC_"))
        }
        env["SEALGATE_ADMIN_KEY"] = self.admin_key
        env.update(self.extra_env)
        with self.stdout_path.open("ab") as out, self.stderr_path.open("ab") as err:
            self.process = subprocess.Popen(
                self.command(), env=env, cwd=self.workdir, stdout=out, stderr=err
            )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"gateway exited with {self.process.returncode}:\n{self.stderr()}"
                )
            try:
                if httpx.get(self.url + "/health/live", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"gateway did not start in {STARTUP_SECONDS}s:\n{self.stderr()}")

    def wait_exit(self, timeout: float = STARTUP_SECONDS) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs (what a hard kill or an OOM kill does)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    # -- admin helpers ----------------------------------------------------------------------
    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.admin_key}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=10, **kwargs)

    def create_key(self, models: list[str], **fields: Any) -> dict[str, Any]:
        response = self.admin("POST", "/admin/keys", json={"models": models, **fields})
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body
