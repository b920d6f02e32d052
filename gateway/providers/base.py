"""What every provider module declares, and what its adapter offers the router.

An adapter speaks one upstream wire format: it builds the upstream request from an OpenAI-shaped
body (translating with ``gateway.wire``), sends it through the deployment's pooled client, and
turns the answer (or the failure) into an OpenAI-shaped ``Reply``/``Stream`` or a GatewayError.
Adapters hold no credentials: the key is passed per call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.config import Deployment
from gateway.providers.pool import UpstreamPool
from gateway.secrets.secret import Secret
from gateway.values import Reply, Stream


class Adapter(Protocol):
    async def chat(self, body: dict[str, Any], key: Secret | None) -> Reply: ...

    async def chat_stream(self, body: dict[str, Any], key: Secret | None) -> Stream: ...

    async def embeddings(self, body: dict[str, Any], key: Secret | None) -> Reply: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class Provider:
    """A provider as the registry knows it.

    ``needs_base_url``: the deployment must pin its upstream (every networked provider);
    ``needs_credential``: it must name a credential reference; ``options``: the provider-specific
    deployment keys it accepts (any other provider refuses them), with ``required_options``
    among them; ``adapter``: how a deployment's adapter is made.
    """

    name: str
    adapter: Callable[[Deployment, UpstreamPool], Adapter]
    needs_base_url: bool = True
    needs_credential: bool = True
    options: frozenset[str] = frozenset()
    required_options: frozenset[str] = frozenset()
    examples: Mapping[str, str] | None = None

    def problem(self, deployment: Deployment) -> str | None:
        """Why ``deployment`` does not suit this provider, or None (the config calls this)."""
        if self.needs_base_url and deployment.base_url is None:
            return f"provider {self.name} needs base_url (the pinned upstream)"
        if self.needs_credential and deployment.credential is None:
            return f"provider {self.name} needs credential (a reference)"
        for option in PROVIDER_OPTIONS:
            given = getattr(deployment, option) is not None
            if option in self.required_options and not given:
                example = (self.examples or {}).get(option)
                hint = f", e.g. {example}" if example else ""
                return f"provider {self.name} needs {option}{hint}"
            if given and option not in self.options:
                return f"{option} does not apply to provider {self.name}"
        return None


# The deployment keys that only some providers take (each provider names its own in ``options``).
PROVIDER_OPTIONS = ("api_version", "aws", "rerank", "anthropic_beta")
