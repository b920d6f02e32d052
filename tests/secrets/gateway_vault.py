"""A real gateway process whose provider key lives in a real OpenBao."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.secrets.vaultlab import VaultLab
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess

HI = {"role": "user", "content": "hi"}


def vault_config(
    lab: VaultLab,
    upstream: FakeUpstream,
    token_ref: str,
    ref: str,
    *,
    address: str | None = None,
    ttl: float = 300,
    stale: float = 0,
    revoke: bool = False,
    vault_extra: str = "",
    extra: str = "",
) -> str:
    """The gateway's config; ``vault_extra`` holds more lines of the ``secrets.vault`` section
    (indented four spaces), ``extra`` more top-level sections."""
    return f"""
deployments:
  - model: vault-gpt
    provider: openai_compatible
    base_url: {upstream.base_url}/v1
    credential: "{ref}"
    allow_private_network: true
    timeouts: {{connect: 1, read: 10, total: 20}}
router:
  retries: 0
secrets:
  ttl_seconds: {ttl}
  stale_seconds: {stale}
  vault:
    address: {address or lab.server.address}
    timeout_seconds: 10
    auth: {{method: token, token: "{token_ref}", revoke_on_shutdown: {str(revoke).lower()}}}
{vault_extra}
verify:
  mode: "off"
governance:
  default_prices: {{input: "0"}}  # the fake upstream costs nothing (a price must be said)
{extra}
"""


class VaultGateway:
    """A gateway reading ``api_key`` at a fresh KV v2 path; ``key`` is a virtual key for it."""

    def __init__(
        self,
        lab: VaultLab,
        upstream: FakeUpstream,
        workdir: Path,
        provider_key: str,
        token: str | None = None,
        env: dict[str, str] | None = None,
        **options: Any,
    ) -> None:
        self.lab = lab
        self.path = "llm/" + uuid.uuid4().hex
        lab.put(self.path, api_key=provider_key)
        self.ref = f"vault:{lab.kv2}/{self.path}#api_key"
        self.token_ref = lab.file_ref(token or lab.server.root_token)
        config = vault_config(lab, upstream, self.token_ref, self.ref, **options)
        self.process = GatewayProcess(workdir, config, env=env)
        self.key = ""

    def start(self) -> VaultGateway:
        self.process.start()
        self.key = self.process.create_key(["vault-gpt"])["key"]
        return self

    def chat(self, key: str | None = None, **body: Any) -> httpx.Response:
        return httpx.post(
            self.process.url + "/v1/chat/completions",
            json={"model": "vault-gpt", "messages": [HI], **body},
            headers={"Authorization": f"Bearer {key or self.key}"},
            timeout=60,
        )

    def ready(self) -> httpx.Response:
        return httpx.get(self.process.url + "/health/ready", timeout=30)

    def stop(self) -> None:
        self.process.stop()
