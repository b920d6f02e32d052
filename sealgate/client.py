"""The in-process SDK: the gateway's providers, router, secret broker and egress guard, called
from Python with no server.

    client = Sealgate("sealgate.yaml")            # or SEALGATE_CONFIG, or the bundled example
    answer = client.completion(model="gpt-4o", messages=[...])          # a ChatCompletion
    for chunk in client.completion(model="gpt-4o", messages=[...], stream=True): ...
    answer = await client.acompletion(...)        # and ``async for`` with stream=True

What is the same as the server: the config file and its loader (every check, with file, key and
line), the egress allowlist (``egress.enforce``, before any key is fetched), the secret broker
(references only; keys in memory for their TTL), the router (strategies, retries, fallbacks,
breakers), the provider adapters (translation, caps, refusals by name) and the body checks of
``/v1/chat/completions``.

Governance is optional: with ``key=`` (a virtual key), each call is authenticated, admitted
(limits, budgets) and its spend recorded in the config's ``storage`` exactly as the server does;
without it, nothing is counted or recorded. Guardrails and the response cache are the server's
alone.

Every call runs on one event loop the client owns (in a thread), because the upstream
connection pools belong to one loop; ``acompletion`` awaits it from any other loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from gateway import integrity
from gateway.api import validation
from gateway.auth import Authenticator
from gateway.config import MAX_EVENT_BYTES, Deployment, GatewayConfig
from gateway.errors import GatewayError, ModelNotFound, PermissionDenied, UpstreamError
from gateway.governance.admission import Admission
from gateway.governance.core import Governance
from gateway.governance.setup import build_governance
from gateway.governance.streams import CountingStream, reply_tokens
from gateway.providers import egress
from gateway.providers.pool import UpstreamPool
from gateway.routing.breaker import build_breakers
from gateway.routing.router import build_router
from gateway.secrets.setup import build_broker
from gateway.serve import load_config
from gateway.store.db import default_url, ensure_data_dir, make_engine, migrate
from gateway.store.keys import KeyRecord, KeyStore
from gateway.values import Stream, Usage
from gateway.wire.sse import EventReader
from sealgate.types import ChatCompletion, ChatCompletionChunk

T = TypeVar("T")
DEFAULT_DATA_DIR = ".sealgate"


def _free(deployment: Deployment, usage: Usage) -> int:
    return 0


class Sealgate:
    def __init__(
        self,
        config: str | os.PathLike[str] | None = None,
        *,
        key: str | None = None,
        data_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        path = config if config is not None else os.environ.get("SEALGATE_CONFIG")
        self.config: GatewayConfig = load_config(path)
        egress.enforce(self.config.deployments, integrity.policies_dir(self.config.verify))
        self._key = key
        self._data_dir = Path(data_dir or os.environ.get("SEALGATE_DATA_DIR", DEFAULT_DATA_DIR))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._closed = False
        try:
            self._submit(self._open()).result()
        except BaseException:
            self._stop_loop()
            raise

    # -- life -------------------------------------------------------------------------------
    async def _open(self) -> None:
        config = self.config
        self._broker = build_broker(config.secrets, config.credentials())
        self._pool = UpstreamPool()
        self._governance: Governance | None = None
        self._record: KeyRecord | None = None
        cost: Callable[[Deployment, Usage], int] = _free  # no governance: nothing is priced
        if self._key is not None:
            ensure_data_dir(self._data_dir)
            url = config.storage.url or default_url(self._data_dir)
            self._engine = make_engine(url, config.storage.timeout_seconds)
            migrate(self._engine)
            self._governance = build_governance(
                config.governance, config.deployments, self._engine, self._data_dir
            )
            await self._governance.start()
            auth = Authenticator(KeyStore(self._engine), config.server.auth_cache_seconds)
            self._record = await auth.authenticate("Bearer " + self._key)
            cost = self._governance.cost
        breakers = build_breakers(config.router.breaker, config.router.cooldown_seconds, None)
        self._router = build_router(
            config.router,
            config.deployments,
            self._pool,
            self._broker,
            config.governance,
            cost,
            breakers,
        )

    async def _aclose(self) -> None:
        if self._governance is not None:
            await self._governance.close()
            self._engine.dispose()
        await self._pool.close()
        await self._broker.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._submit(self._aclose()).result()
        finally:
            self._stop_loop()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.wrap_future(self._submit(self._aclose()))
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> Sealgate:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    async def __aenter__(self) -> Sealgate:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    def _submit(self, call: Awaitable[T]) -> Future[T]:
        async def run() -> T:
            return await call

        return asyncio.run_coroutine_threadsafe(run(), self._loop)

    # -- calls ------------------------------------------------------------------------------
    def completion(self, **body: Any) -> Any:
        """A chat completion (``ChatCompletion``), or with ``stream=True`` an iterator of
        ``ChatCompletionChunk``. The arguments are ``/v1/chat/completions``'s body fields."""
        if body.get("stream"):
            return self._sync_chunks(self._submit(self._open_stream(body)).result())
        return self._submit(self._complete(body)).result()

    async def acompletion(self, **body: Any) -> Any:
        """``completion`` for asyncio: an awaited ``ChatCompletion``, or with ``stream=True``
        an async iterator of ``ChatCompletionChunk``."""
        if body.get("stream"):
            opened = await asyncio.wrap_future(self._submit(self._open_stream(body)))
            return self._async_chunks(opened)
        return await asyncio.wrap_future(self._submit(self._complete(body)))

    def _check(self, body: dict[str, Any]) -> str:
        if self._closed:
            raise RuntimeError("this Sealgate client is closed")
        model = validation.check_chat(body)
        if model not in self._router.groups:
            raise ModelNotFound(f"model {model!r} does not exist", param="model")
        if self._record is not None and not self._record.allows(model):
            raise PermissionDenied(f"this key may not use model {model!r}", param="model")
        return model

    async def _admit(self, model: str, body: dict[str, Any]) -> tuple[Admission | None, Any]:
        plan = self._router.plan(model, stream=bool(body.get("stream")), key=self._record)
        if self._governance is None or self._record is None:
            return None, plan
        admission = await self._governance.admit(
            self._record, model, body, {}, "chat", plan[0].deployment
        )
        return admission, plan

    async def _complete(self, body: dict[str, Any]) -> ChatCompletion:
        model = self._check(body)
        admission, plan = await self._admit(model, body)
        gate = admission.gate if admission is not None else None
        try:
            reply, deployment = await self._router.chat(model, body, gate, plan)
        except BaseException as exc:
            if admission is not None:
                admission.fail(exc)
            raise
        if admission is not None:
            await admission.finish(reply.usage, deployment, "ok", reply_tokens(reply))
        return ChatCompletion.model_validate_json(reply.body)

    async def _open_stream(self, body: dict[str, Any]) -> _Opened:
        model = self._check(body)
        admission, plan = await self._admit(model, body)
        gate = admission.gate if admission is not None else None
        try:
            stream, deployment = await self._router.chat_stream(model, body, gate, plan)
        except BaseException as exc:
            if admission is not None:
                admission.fail(exc)
            raise
        return _Opened(CountingStream(stream), admission, deployment)

    def _sync_chunks(self, opened: _Opened) -> Iterator[ChatCompletionChunk]:
        chunks = opened.events()
        try:
            while True:
                try:
                    batch = self._submit(anext(chunks)).result()
                except StopAsyncIteration:
                    return
                yield from batch
        finally:
            self._submit(opened.end(chunks)).result()

    async def _async_chunks(self, opened: _Opened) -> AsyncIterator[ChatCompletionChunk]:
        chunks = opened.events()
        try:
            while True:
                try:
                    batch = await asyncio.wrap_future(self._submit(anext(chunks)))
                except StopAsyncIteration:
                    return
                for chunk in batch:
                    yield chunk
        finally:
            await asyncio.wrap_future(self._submit(opened.end(chunks)))


class _Opened:
    """A routed stream, read as typed chunks, settled (spend, limits) when it ends."""

    def __init__(self, stream: CountingStream, admission: Admission | None, deployment: Any):
        self.stream: Stream = stream
        self.counting = stream
        self.admission = admission
        self.deployment = deployment
        self.outcome = "client_closed"

    async def events(self) -> AsyncIterator[list[ChatCompletionChunk]]:
        reader = EventReader(MAX_EVENT_BYTES)
        try:
            async for piece in self.stream.chunks():
                batch = []
                for event in reader.feed(piece):
                    if not event.data or event.data == b"[DONE]":
                        continue
                    payload = json.loads(event.data)
                    if isinstance(payload, dict) and payload.get("error") is not None:
                        raise UpstreamError("the upstream reported an error mid-stream")
                    batch.append(ChatCompletionChunk.model_validate(payload))
                if batch:
                    yield batch
            self.outcome = "ok"
        except GatewayError as exc:
            self.outcome = exc.code or "upstream_error"
            raise

    async def end(self, chunks: AsyncIterator[list[ChatCompletionChunk]]) -> None:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
        await self.stream.aclose()
        if self.admission is not None:
            used = self.counting.charged(finished=self.outcome == "ok")
            await self.admission.finish(used, self.deployment, self.outcome, self.counting.counted)


_default: Sealgate | None = None
_lock = threading.Lock()


def default_client() -> Sealgate:
    """The client ``completion`` and ``acompletion`` use: made on first use from
    SEALGATE_CONFIG (and SEALGATE_KEY for governance), then kept for the process."""
    global _default
    with _lock:
        if _default is None:
            _default = Sealgate(key=os.environ.get("SEALGATE_KEY"))
        return _default


def completion(**body: Any) -> Any:
    return default_client().completion(**body)


async def acompletion(**body: Any) -> Any:
    return await default_client().acompletion(**body)
