"""The guardrails over MCP tool calls (``gateway.mcp.aggregator.CallGuard``): a call's arguments
are checked before the upstream sees them, its result before the client does, under the policy
the caller's key runs under (``Guardrails.policy_for`` with the tool's ``server.tool`` name in
place of a model, so the config's ``models`` entries can name tools too).

Every string inside the arguments is inspected and masked in place (the ``request`` stage of the
policy, recorded as ``mcp_arguments``); in a result, the text of each text block, of each
embedded text resource, and every string of the structured content (the ``response`` stage,
recorded as ``mcp_result``). A blocked finding refuses the call (the aggregator's audit row of
the call says ``guardrail_blocked``). Findings reach the metrics, the log and the audit chain as
on the inference routes, never the text found. The external webhook is not asked about tool
calls.
"""

from __future__ import annotations

from typing import Any

import mcp_types as types

from gateway.api.inference import Inference
from gateway.guardrails.pipeline import Evidence, Guardrails
from gateway.guardrails.policy import Policy
from gateway.store.keys import KeyRecord


class McpGuardrails:
    def __init__(self, inference: Inference) -> None:
        self.inference = inference  # its guardrails: the ones a reload swapped in

    def _policy(self, record: KeyRecord, name: str) -> tuple[Guardrails | None, Policy | None]:
        guardrails = self.inference.guardrails
        if guardrails is None:
            return None, None
        snapshot = self.inference.governance.snapshot
        team = snapshot.teams.get(record.team_id) if record.team_id else None
        policy = guardrails.policy_for(record, name, team.metadata if team is not None else None)
        return guardrails, policy

    def _evidence(self, record: KeyRecord, name: str) -> Evidence:
        evidence = self.inference.evidence(record, name)
        evidence.about["tool"] = evidence.about.pop("model")
        return evidence

    async def arguments(
        self, record: KeyRecord, name: str, arguments: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        guardrails, policy = self._policy(record, name)
        if guardrails is None or policy is None or not arguments:
            return arguments
        evidence = self._evidence(record, name)
        guardrails.check_values(policy, "mcp_arguments", "request", arguments, evidence)
        return arguments

    async def result(
        self, record: KeyRecord, name: str, result: types.CallToolResult
    ) -> types.CallToolResult:
        guardrails, policy = self._policy(record, name)
        if guardrails is None or policy is None or "response" not in policy.stages:
            return result
        texts: list[Any] = []
        for block in result.content:
            if isinstance(block, types.TextContent):
                texts.append(block)
            elif isinstance(block, types.EmbeddedResource) and isinstance(
                block.resource, types.TextResourceContents
            ):
                texts.append(block.resource)
        values: dict[str, Any] = {"texts": [t.text for t in texts]}
        if result.structured_content is not None:
            values["structured"] = result.structured_content
        evidence = self._evidence(record, name)
        guardrails.check_values(policy, "mcp_result", "response", values, evidence)
        for holder, new in zip(texts, values["texts"], strict=True):
            holder.text = new  # the structured content was masked where it is
        return result
