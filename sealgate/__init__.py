"""Sealgate in-process: the gateway's providers, router, secret broker and egress guard, called
from Python with no server (``sealgate.client``).

    from sealgate import completion, acompletion
    answer = completion(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])

The module-level functions use one client made from ``SEALGATE_CONFIG`` (and ``SEALGATE_KEY``,
a virtual key, to govern the calls); ``Sealgate(config, key=...)`` makes one explicitly.
"""

from __future__ import annotations

from sealgate.client import Sealgate, acompletion, completion, default_client
from sealgate.types import ChatCompletion, ChatCompletionChunk

__all__ = [
    "ChatCompletion",
    "ChatCompletionChunk",
    "Sealgate",
    "acompletion",
    "completion",
    "default_client",
]
