"""The stream stage: a streamed chat completion checked as it passes, holding back only what a
detector may still need.

Each choice's text is kept in a small buffer. When a chunk adds text, the buffer is scanned and
everything up to ``HOLD`` characters from its end goes out (masked), except that a match that
reaches past that point is held whole, since more of it may be coming: a card number split over
two chunks is seen as one. The bound: a choice holds at most ``HOLD`` characters beyond the last
point that went out, or one unfinished match of up to ``MAX_HOLD`` characters (the longest any
built-in detector matches: a PEM block); past that, what is held goes out masked as far as it was
found. The chunk that finishes a choice, and the stream's ``[DONE]``, release everything.

A chunk whose only news was text that is now held back is not sent (the text goes out in a later
chunk). A blocked finding ends the stream with a ``guardrail_blocked`` error event: the status
line is already sent.

A tool call's arguments (``delta.tool_calls[].function.arguments``, JSON text in pieces) are held
and released the same way, each call of each choice on its own buffer, so a card number split
over two argument deltas is masked too; what a call still holds goes out with the chunk that
finishes its choice (as one more ``tool_calls`` entry for that call's index).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

from gateway.errors import GuardrailBlocked
from gateway.guardrails.policy import Policy
from gateway.values import Stream, Usage
from gateway.wire.sse import Event, EventReader

HOLD = 256
MAX_HOLD = 20_000
MAX_EVENT_BYTES = 64 * 1024 * 1024  # the upstream reader already capped each event


class GuardedStream:
    def __init__(
        self,
        inner: Stream,
        policy: Policy,
        on_found: Callable[[Counter[str], str | None], None],
    ) -> None:
        self._inner = inner
        self._policy = policy
        self._on_found = on_found
        self._held: dict[Any, str] = {}  # a choice's text by its index; a call's by (choice, call)
        self._last: dict[str, Any] | None = None  # the last chunk, to frame a flush from

    @property
    def usage(self) -> Usage | None:
        return self._inner.usage

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def chunks(self) -> AsyncIterator[bytes]:
        reader = EventReader(MAX_EVENT_BYTES)
        async for piece in self._inner.chunks():
            out = b"".join(self._event(event) for event in reader.feed(piece))
            if out:
                yield out
        rest = b"".join(self._event(event) for event in reader.finish())
        rest += self._flush()
        if rest:
            yield rest

    def _event(self, event: Event) -> bytes:
        if event.data == b"[DONE]":
            return self._flush() + event.raw
        if event.name or not event.data:
            return event.raw
        try:
            chunk = json.loads(event.data)
        except ValueError:
            return event.raw
        if not isinstance(chunk, dict) or not isinstance(chunk.get("choices"), list):
            return event.raw
        self._last = chunk
        changed = False
        kept: list[Any] = []
        for choice in chunk["choices"]:
            if not isinstance(choice, dict):
                kept.append(choice)
                continue
            delta = choice.get("delta")
            content = delta.get("content") if isinstance(delta, dict) else None
            finished = choice.get("finish_reason") is not None
            index = choice.get("index", 0)
            if not isinstance(index, int):
                index = 0
            if isinstance(delta, dict) and self._tool_calls(index, delta, finished):
                changed = True
            if not isinstance(content, str) and not finished:
                kept.append(choice)
                continue
            text = self._release(index, content or "", finished)
            changed = True
            if isinstance(delta, dict):
                if text:
                    delta["content"] = text
                elif "content" in delta and len(delta) > 1:
                    delta["content"] = ""
                elif "content" in delta and not finished:
                    continue  # nothing of this choice can go out yet
            kept.append(choice)
        if not changed:
            return event.raw
        if not kept and chunk.get("usage") is None:
            return b""
        chunk["choices"] = kept
        return _frame(chunk)

    def _release(self, index: Any, added: str, final: bool) -> str:
        """What of choice ``index``'s text may go out now, masked."""
        text = self._held.get(index, "") + added
        if not text:
            return ""
        policy = self._policy
        matches = policy.inspect(text)
        blocked = policy.blocking(matches)
        if blocked is not None:
            self._on_found(Counter(m.detector for m in matches), blocked)
            raise GuardrailBlocked(blocked, "stream")
        cut = len(text) if final else max(0, len(text) - HOLD)
        for match in matches:
            if match.start < cut < match.end:
                cut = match.start
                break
        if len(text) - cut > MAX_HOLD:
            cut = len(text)
        out = [m for m in matches if m.end <= cut]
        self._held[index] = text[cut:]
        if out:
            self._on_found(Counter(m.detector for m in out), None)
        return policy.mask(text[:cut], out)

    def _tool_calls(self, index: int, delta: dict[str, Any], finished: bool) -> bool:
        """Hold and mask the argument pieces of ``delta``'s tool calls in place; when the choice
        finishes, add what its calls still hold. Whether anything was there to look at."""
        calls = delta.get("tool_calls")
        seen = False
        if isinstance(calls, list):
            for call in calls:
                function = call.get("function") if isinstance(call, dict) else None
                arguments = function.get("arguments") if isinstance(function, dict) else None
                if not isinstance(arguments, str) or function is None:
                    continue
                number = call.get("index", 0)
                number = number if isinstance(number, int) else 0
                function["arguments"] = self._release((index, number), arguments, False)
                seen = True
        if finished:
            rest = self._rest_of_calls(index)
            if rest:
                delta["tool_calls"] = [*(calls if isinstance(calls, list) else []), *rest]
                seen = True
        return seen

    def _rest_of_calls(self, index: int) -> list[dict[str, Any]]:
        """``tool_calls`` entries with what the calls of choice ``index`` still hold (masked)."""
        out = []
        for key in sorted(k for k in self._held if isinstance(k, tuple) and k[0] == index):
            text = self._release(key, "", True)
            if text:
                out.append({"index": key[1], "function": {"arguments": text}})
        return out

    def _flush(self) -> bytes:
        """A chunk with whatever is still held (a stream that ended without finishing)."""
        held = {i for i, t in self._held.items() if t}
        if not held or self._last is None:
            return b""
        indexes = sorted({i if isinstance(i, int) else i[0] for i in held})
        choices = []
        for i in indexes:
            delta: dict[str, Any] = {"content": self._release(i, "", True)}
            calls = self._rest_of_calls(i)
            if calls:
                delta["tool_calls"] = calls
            choices.append({"index": i, "delta": delta, "finish_reason": None})
        chunk = {k: v for k, v in self._last.items() if k not in ("choices", "usage")}
        return _frame({**chunk, "choices": choices})


def _frame(chunk: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"
