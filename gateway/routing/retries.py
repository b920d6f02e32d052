"""How long to wait before a retry, and which fallback list a failure leads to: pure functions.

The wait is exponential backoff with full jitter: before retry ``n`` (1 for the first),
``uniform(0, min(max_seconds, base_seconds * 2 ** (n - 1)))``. An upstream's ``Retry-After``
(seconds) is honoured up to ``retry_after_max_seconds``: the wait is at least that, and the same
deployment may then be asked again, because it said when it would have room. A Retry-After
longer than the cap keeps that deployment out of this request (its breaker holds it for as long
as it asked). The router never starts a wait that would end past the request's deadline.
"""

from __future__ import annotations

import random

from gateway.config.routing import Backoff, ErrorClass
from gateway.errors import GatewayError, UpstreamRateLimited, UpstreamRejected

CONTEXT_WINDOW_CODES = frozenset({"context_length_exceeded"})
CONTENT_POLICY_CODES = frozenset({"content_filter", "content_policy_violation"})
# Anthropic says a prompt is too long with a plain invalid_request_error and this wording.
CONTEXT_WINDOW_WORDING = "prompt is too long"


def backoff(retry: int, settings: Backoff, rng: random.Random) -> float:
    """The jittered wait before retry number ``retry`` (1 for the first)."""
    ceiling = min(settings.max_seconds, settings.base_seconds * 2 ** max(0, retry - 1))
    return rng.uniform(0, ceiling)


def retry_after(exc: GatewayError) -> float | None:
    """The upstream's Retry-After in seconds, when the failure carried one."""
    value = exc.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None


def error_class(exc: GatewayError) -> ErrorClass | None:
    """The fallback class of a failure, or None for a failure no fallback may follow (the
    client's own bad request, the gateway's own refusals)."""
    if isinstance(exc, UpstreamRateLimited):
        return "rate_limited"
    if isinstance(exc, UpstreamRejected):
        if exc.code in CONTEXT_WINDOW_CODES or CONTEXT_WINDOW_WORDING in exc.message.lower():
            return "context_window"
        if exc.code in CONTENT_POLICY_CODES:
            return "content_policy"
        return None
    return "general" if exc.retryable else None
