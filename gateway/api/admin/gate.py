"""The door in front of every ``/admin`` route: who is calling is settled before anything of the
request body is looked at, and the body is read with the size cap and as strict JSON before the
framework parses it.

A caller without a valid admin credential is answered 401 whatever it sent (no field names, no
parse errors: nothing that tells it how bodies are checked), and cannot make the gateway read
more than ``server.max_body_bytes`` or parse JSON that the framework's parser would trip on
(nesting thousands deep, lone surrogates, numbers out of range: ``gateway.api.bodies``). The
caller it resolved goes to the routes with the request (``ACTOR``), so the ``Caller`` dependency
does not look it up again.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api import bodies
from gateway.api.admin.context import ACTOR, AdminContext
from gateway.api.asgi import read_body


def is_admin(path: str) -> bool:
    return path == "/admin" or path.startswith("/admin/")


class AdminGate:
    def __init__(self, app: ASGIApp, context: AdminContext, max_body_bytes: int) -> None:
        self.app = app
        self.context = context
        self.limit = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        authorization = headers.get(b"authorization")
        actor = await self.context.resolve(
            authorization.decode("latin-1") if authorization is not None else None
        )
        body = await read_body(receive, headers, self.limit)
        if body:
            bodies.parse(body)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the client's disconnect, when it comes

        state = {**scope.get("state", {}), ACTOR: actor}
        await self.app({**scope, "state": state}, replay, send)
