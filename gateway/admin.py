"""The admin API: virtual keys. Every route needs the admin credential as a Bearer token."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import anyio.to_thread
from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from gateway.errors import InvalidRequest, ModelNotFound, NotFound

if TYPE_CHECKING:
    from gateway.app import Services

log = logging.getLogger("sealgate.admin")

MetadataValue = str | int | float | bool | None


class CreateKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    models: Annotated[
        list[Annotated[str, Field(min_length=1)]], Field(min_length=1, max_length=1000)
    ]
    expires_at: datetime | None = None
    metadata: Annotated[dict[str, MetadataValue], Field(max_length=64)] = {}


def mount(app: FastAPI, services: Services) -> None:
    def require_admin(request: Request) -> None:
        services.admin_credential.check(request.headers.get("authorization"))

    @app.post("/admin/keys", status_code=201)
    async def create_key(request: Request, spec: CreateKey) -> JSONResponse:
        require_admin(request)
        known = set(services.router.models())
        unknown = sorted(set(spec.models) - known - {"*"})
        if unknown:
            raise ModelNotFound(f"unknown model(s): {', '.join(unknown)}", param="models")
        expires_at = spec.expires_at
        if expires_at is not None:
            if expires_at.tzinfo is None:
                raise InvalidRequest(
                    "expires_at needs a time zone, e.g. 2027-01-01T00:00:00Z", param="expires_at"
                )
            if expires_at <= datetime.now(UTC):
                raise InvalidRequest("expires_at must be in the future", param="expires_at")
        key, record = await anyio.to_thread.run_sync(
            services.keys.create, spec.models, expires_at, spec.metadata
        )
        log.info("virtual key created", extra={"sg_key_id": record.id, "sg_models": spec.models})
        body: dict[str, Any] = {"key": key, **record.public()}
        return JSONResponse(body, status_code=201, headers={"Cache-Control": "no-store"})

    @app.get("/admin/keys")
    async def list_keys(request: Request) -> JSONResponse:
        require_admin(request)
        records = await anyio.to_thread.run_sync(services.keys.list)
        return JSONResponse({"object": "list", "data": [r.public() for r in records]})

    @app.delete("/admin/keys/{key_id}")
    async def revoke_key(request: Request, key_id: str) -> JSONResponse:
        require_admin(request)
        record = await anyio.to_thread.run_sync(services.keys.get, key_id)
        if record is None:
            raise NotFound(f"no key with id {key_id!r}", code="key_not_found")
        await anyio.to_thread.run_sync(services.keys.revoke, key_id)
        services.auth.forget(key_id)
        log.info("virtual key revoked", extra={"sg_key_id": key_id})
        return JSONResponse({"id": key_id, "revoked": True})
