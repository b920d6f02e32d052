"""Azure OpenAI: the OpenAI wire format at a deployment URL, with the key in ``api-key``.

``https://<resource>.openai.azure.com/openai/deployments/<upstream_model>/chat/completions
?api-version=<api_version>``; the body's ``model`` is dropped (the URL names the deployment).
"""

from __future__ import annotations

from typing import Any

from gateway.config import Deployment
from gateway.providers.base import Provider
from gateway.providers.openai import OpenAIAdapter
from gateway.providers.pool import UpstreamPool
from gateway.secrets.secret import Secret


class AzureAdapter(OpenAIAdapter):
    def urls(self, base: str) -> tuple[str, str]:
        name = self.deployment.upstream_model or self.deployment.model
        query = f"?api-version={self.deployment.api_version}"
        prefix = f"{base}/openai/deployments/{name}"
        return f"{prefix}/chat/completions{query}", f"{prefix}/embeddings{query}"

    def responses_url(self, base: str) -> str:
        return f"{base}/openai/responses?api-version={self.deployment.api_version}"

    def responses_body(self, body: dict[str, Any]) -> dict[str, Any]:
        # Azure's Responses API names the deployment in the body's ``model``.
        return {**body, "model": self.deployment.upstream_model or self.deployment.model}

    def auth_headers(self, key: Secret) -> dict[str, str]:
        return {"api-key": key.reveal()}

    def upstream_body(self, body: dict[str, Any]) -> dict[str, Any]:
        out = dict(body)
        out.pop("model", None)
        return out


def _adapter(deployment: Deployment, pool: UpstreamPool) -> AzureAdapter:
    return AzureAdapter(deployment, pool)


PROVIDER = Provider(
    "azure",
    _adapter,
    options=frozenset({"api_version"}),
    required_options=frozenset({"api_version"}),
    examples={"api_version": "2024-10-21"},
)
