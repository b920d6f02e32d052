"""The dashboard's one way to read and change anything: the admin API itself, called in process
as the signed-in identity.

Every page reads through the admin API's own routes and every form is sent to them, with the
session's actor put where the admin gate leaves the caller it resolved (``context.ACTOR``). So
the dashboard runs the very handlers, validation, role checks (``gateway.governance.roles``)
and audit records the API runs, and a viewer's forged form is refused exactly as the API
refuses that viewer: there is no second copy of the rules to drift.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from starlette.types import ASGIApp, Message

from gateway.api.admin.context import ACTOR
from gateway.governance.audit import Actor


@dataclass
class Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def error(self) -> str:
        """The API's error message (its bodies are OpenAI-shaped: {"error": {"message": ...}})."""
        try:
            found = self.json()
            return str(found["error"]["message"])
        except (ValueError, KeyError, TypeError):
            return f"the request failed (HTTP {self.status})"


class AdminApi:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app  # the FastAPI app that holds the admin routes (behind the admin gate)

    async def call(
        self,
        actor: Actor,
        method: str,
        path: str,
        query: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Answer:
        raw = json.dumps(body).encode() if body is not None else b""
        headers = [(b"host", b"sealgate.ui")]
        if body is not None:
            headers += [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(raw)),
            ]
        params = {k: v for k, v in (query or {}).items() if v is not None and v != ""}
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": urlencode(params).encode(),
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 0),
            "server": ("sealgate.ui", 80),
            "state": {ACTOR: actor},
        }
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return {"type": "http.disconnect"}

        status = 500
        chunks: list[bytes] = []
        answer_headers: dict[str, str] = {}

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", []):
                    answer_headers[name.decode("latin-1").lower()] = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return Answer(status, b"".join(chunks), answer_headers)
