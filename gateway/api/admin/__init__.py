"""The admin API, one router per resource: keys, teams, users, budgets, project and tag limits,
admin tokens, the spend reports with the audit log, and the MCP gateway (servers, approvals,
allowlists). Every route takes the caller as a dependency (``context.AdminContext.caller``) and
checks its role with ``gateway.governance.roles``.
"""

from __future__ import annotations

from fastapi import APIRouter

from gateway.api.admin import budgets, keys, limits, mcp, reports, teams, tokens, users
from gateway.api.admin.context import AdminContext

RESOURCES = (keys, teams, users, budgets, limits, tokens, reports, mcp)


def routers(context: AdminContext) -> list[APIRouter]:
    return [resource.router(context) for resource in RESOURCES]
