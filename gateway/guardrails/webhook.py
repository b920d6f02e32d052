"""An external guardrail over HTTP: the request's texts go to the operator's service, which says
allow or block.

What is sent is built here and holds only ``{"stage", "model", "texts"}``: no header of the
client's request, no key, no metadata, and every text with the secret detectors' matches masked
first, so a credential in a prompt never leaves for the webhook either. The connection is pinned
like a provider's (``gateway.providers.egress``): the host must be on the egress allowlist under
``guardrail_webhook`` (checked at start-up), names resolve only to that host and, unless the
policy allows private networks, only to public addresses; redirects are not followed; the answer
is read within ``MAX_ANSWER_BYTES``; the whole call within the policy's timeout. When it fails
(no answer in time, a status other than 200, an answer that is not a verdict), the policy's
``on_error`` decides: ``fail_closed`` refuses the request (503 ``guardrail_unavailable``),
``fail_open`` lets it go on and counts it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from gateway.config import guardrails as config
from gateway.errors import ConfigError, GuardrailBlocked, GuardrailUnavailable
from gateway.guardrails.detectors import Detector, masked, scan
from gateway.metrics import METRICS
from gateway.providers import egress

LOG = logging.getLogger("sealgate.guardrails")
MAX_ANSWER_BYTES = 64 * 1024
EGRESS_NAME = "guardrail_webhook"  # its hosts' entry in policies/egress.yaml
FAILURES = METRICS.counter(
    "sealgate_guardrail_webhook_failures_total",
    "external guardrail calls that failed, by policy and what was done (fail_open|fail_closed)",
)


class Webhook:
    def __init__(self, policy: str, settings: config.Webhook, scrub: tuple[Detector, ...]):
        self.policy = policy
        self.settings = settings
        self.scrub = scrub
        self.detector = f"webhook:{policy}"
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        host = urlsplit(self.settings.url).hostname or ""
        connector = aiohttp.TCPConnector(
            limit=64,
            resolver=egress.GuardedResolver(host, self.settings.allow_private_network),
        )
        return aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout_seconds),
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent",),
            headers={"User-Agent": "sealgate"},
        )

    def payload(self, stage: str, model: str, texts: list[str]) -> bytes:
        """What is sent: the texts with every secret masked, and nothing of the caller."""
        clean = []
        for text in texts:
            found = scan(self.scrub, text)
            clean.append(masked(text, found, {d.name: d.placeholder for d in self.scrub}))
        return json.dumps({"stage": stage, "model": model, "texts": clean}).encode()

    async def check(self, stage: str, model: str, texts: list[str]) -> None:
        """Raise GuardrailBlocked when the webhook says block; on a failure, what ``on_error``
        says."""
        try:
            verdict = await asyncio.wait_for(
                self._ask(self.payload(stage, model, texts)), self.settings.timeout_seconds
            )
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            self._failed(type(exc).__name__)
            return
        if verdict == "block":
            raise GuardrailBlocked(self.detector, stage)
        if verdict != "allow":
            self._failed("not a verdict")

    async def _ask(self, body: bytes) -> str:
        if self._session is None or self._session.closed:
            self._session = self._open()
        async with self._session.post(
            self.settings.url,
            data=body,
            headers={"Content-Type": "application/json"},
            allow_redirects=False,
        ) as response:
            if response.status != 200:
                raise ValueError(f"status {response.status}")
            answer = await response.content.read(MAX_ANSWER_BYTES + 1)
        if len(answer) > MAX_ANSWER_BYTES:
            raise ValueError("answer too large")
        data = json.loads(answer)
        verdict = data.get("verdict") if isinstance(data, dict) else None
        return verdict if isinstance(verdict, str) else ""

    def _failed(self, why: str) -> None:
        mode = self.settings.on_error
        FAILURES[(("policy", self.policy), ("mode", mode))] += 1
        LOG.warning(
            "guardrail webhook of policy %s failed (%s); %s",
            self.policy,
            why,
            mode.replace("_", " "),
        )
        if mode == "fail_closed":
            raise GuardrailUnavailable(
                "the external guardrail did not answer; the request is refused (fail closed)"
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def check_egress(section: config.Guardrails, policies: Path) -> None:
    """Refuse, at start-up, a webhook whose host is not on the egress allowlist (a private or
    loopback literal needs ``allow_private_network`` instead), as for a provider."""
    allowlist: egress.EgressPolicy | None = None
    for name, policy in section.policies.items():
        hook = policy.webhook
        if hook is None:
            continue
        host = urlsplit(hook.url).hostname or ""
        where = f"guardrails.policies.{name}.webhook.url"
        if egress.is_local_literal(host):
            if not hook.allow_private_network:
                raise ConfigError(
                    "config",
                    where,
                    f"{host} is a private, loopback or link-local address; set "
                    "allow_private_network: true on this webhook",
                )
            continue
        if allowlist is None:
            allowlist = egress.load_policy(policies / egress.POLICY_FILE)
        if not allowlist.allows(EGRESS_NAME, host):
            raise ConfigError(
                "config",
                where,
                f"host {host} is not on the egress allowlist for {EGRESS_NAME} "
                f"({allowlist.source})",
            )
