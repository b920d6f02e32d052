"""Every provider the gateway can route to, by the name a deployment's ``provider`` gives.

Each provider is one module that declares a ``PROVIDER``: what it needs of a deployment (checked
while the config is validated, with the file, key and line of any problem) and how its adapter is
made. A name not listed here is a configuration error. Adding a provider is one new module in
``gateway/providers/`` and one line below (docs/architecture.md, "Adding a provider").
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.config import Deployment
from gateway.providers import anthropic, azure, bedrock, cohere, google, mock, openai
from gateway.providers.base import Adapter, Provider
from gateway.providers.pool import UpstreamPool

PROVIDERS: Mapping[str, Provider] = {
    p.name: p
    for p in (
        openai.PROVIDER,
        openai.COMPATIBLE,
        azure.PROVIDER,
        anthropic.PROVIDER,
        google.GEMINI,
        google.VERTEX,
        mock.PROVIDER,
        bedrock.PROVIDER,
        cohere.PROVIDER,
    )
}


def adapter_for(deployment: Deployment, pool: UpstreamPool) -> Adapter:
    """The adapter of a validated deployment (its provider is known: config checked it)."""
    return PROVIDERS[deployment.provider].adapter(deployment, pool)
