"""One error tree for everything a request can fail on; every subclass lives in this module.

    GatewayError                    500 server_error (never retried)
    ├── InvalidRequest              400 invalid_request_error
    │   ├── PayloadTooLarge         413
    │   ├── HeadersTooLarge         431 request headers over the size or count limit
    │   ├── RequestTimeout          408 headers or body not received in time
    │   └── GuardrailBlocked        400 guardrail_blocked: names the detector, never the match
    ├── AuthenticationFailed        401 authentication_error
    ├── PermissionDenied            403 permission_error
    ├── NotFound                    404 not_found_error
    │   ├── ModelNotFound
    │   └── ToolNotFound            an MCP tool that does not exist, or the caller may not use
    ├── Conflict                    409 conflict (a name or scope that is taken)
    ├── RateLimited                 429 rate_limit_error (Retry-After, x-ratelimit-* headers)
    │   ├── BudgetExceeded          429 budget_exceeded (a hard budget would be passed)
    │   └── UpstreamRateLimited     the provider's own 429               (retryable)
    ├── UpstreamError               502 upstream_error                   (retryable)
    │   ├── UpstreamUnavailable     503                                  (retryable)
    │   ├── UpstreamTimeout         504                                  (retryable)
    │   ├── UpstreamCredentialRejected  502: the provider refused the gateway's key (refetch once)
    │   ├── UpstreamTruncated       502 upstream_truncated: a stream ended before its end marker
    │   ├── UpstreamRejected        the upstream's own 4xx, passed on with its status, not retried
    │   └── UpstreamTooLarge        502 an answer, stream or stream event over the deployment's cap
    ├── SecretUnavailable           503 credential_unavailable (fail closed)  (retryable)
    ├── GuardrailUnavailable        503 guardrail_unavailable: a fail-closed webhook did not answer
    ├── LimitsUnavailable           503 limits_unavailable: shared counters unreachable, fail closed
    ├── StorageUnavailable          503 storage_unavailable: a key not seen before, database down
    ├── ConversationsUnavailable    503 conversation_state_unavailable: previous_response_id's
    │                               state store (Redis) unreachable; the follow-up is not sent
    └── TooManyConnections          503 too_many_connections: server.max_connections are open

    ConfigError                     not HTTP: refuses start-up; names file, key, expectation

Every message is written for the caller and never carries a secret, an upstream body, a URL with
credentials or a traceback. Upstream detail goes to the log, through the redacting filter, once:
an error whose cause was already logged where it happened says so (``logged``), and the layers
it passes through log nothing more about it. How an
error is written on the wire is the HTTP layer's business (``gateway.api.errors``: one renderer
per wire format).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar


class GatewayError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    default_code: ClassVar[str] = "internal_error"
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        logged: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.default_code
        self.headers: dict[str, str] = dict(headers or {})
        self.logged = logged

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    @property
    def http_status(self) -> int:
        return self.status


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    default_code = "invalid_request"


class PayloadTooLarge(InvalidRequest):
    status = 413
    default_code = "request_too_large"


class HeadersTooLarge(InvalidRequest):
    status = 431
    default_code = "request_header_too_large"


class RequestTimeout(InvalidRequest):
    status = 408
    default_code = "request_timeout"


class GuardrailBlocked(InvalidRequest):
    """A guardrail policy blocks this request or answer. The message names the detector (and the
    stage); what it matched is never in it."""

    default_code = "guardrail_blocked"

    def __init__(self, detector: str, stage: str) -> None:
        what = "request" if stage == "request" else "answer"
        super().__init__(
            f"the {what} was blocked by the guardrail detector {detector!r}", param=detector
        )
        self.detector = detector
        self.stage = stage


class AuthenticationFailed(GatewayError):
    status = 401
    type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    type = "permission_error"
    default_code = "model_not_allowed"


class NotFound(GatewayError):
    status = 404
    type = "not_found_error"
    default_code = "not_found"


class ModelNotFound(NotFound):
    default_code = "model_not_found"


class ToolNotFound(NotFound):
    default_code = "tool_not_found"


class Conflict(GatewayError):
    status = 409
    type = "invalid_request_error"
    default_code = "conflict"


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class BudgetExceeded(RateLimited):
    default_code = "budget_exceeded"


class UpstreamRateLimited(RateLimited):
    """The provider's 429: another deployment may have room, so it is retryable."""

    retryable = True


class UpstreamError(GatewayError):
    status = 502
    type = "upstream_error"
    default_code = "upstream_error"
    retryable = True


class UpstreamUnavailable(UpstreamError):
    status = 503
    default_code = "upstream_unavailable"


class UpstreamTimeout(UpstreamError):
    status = 504
    default_code = "upstream_timeout"


class UpstreamCredentialRejected(UpstreamError):
    """The provider said 401/403 to the gateway's own key: drop the cached key, refetch once."""


class UpstreamTruncated(UpstreamError):
    """A stream the upstream ended (cleanly, as far as HTTP goes) before its end marker: the
    answer is incomplete. Raised while streaming, so it becomes the stream's last event."""

    default_code = "upstream_truncated"


class UpstreamRejected(UpstreamError):
    """The provider refused the request itself (4xx other than 401/408/429): not worth a retry."""

    retryable = False

    def __init__(self, message: str, *, upstream_status: int, code: str | None = None) -> None:
        super().__init__(message, code=code or "upstream_rejected")
        self.upstream_status = upstream_status

    @property
    def http_status(self) -> int:
        return self.upstream_status


class UpstreamTooLarge(UpstreamError):
    """The upstream's answer (or stream, or one event of it) is larger than the deployment
    allows. The upstream did the work, so another deployment is not tried (it would be paid
    twice), and what was used is charged."""

    retryable = False
    default_code = "upstream_response_too_large"


class SecretUnavailable(GatewayError):
    status = 503
    type = "server_error"
    default_code = "credential_unavailable"
    retryable = True


class GuardrailUnavailable(GatewayError):
    status = 503
    type = "server_error"
    default_code = "guardrail_unavailable"
    retryable = True


class LimitsUnavailable(GatewayError):
    status = 503
    type = "server_error"
    default_code = "limits_unavailable"
    retryable = True


class TooManyConnections(GatewayError):
    status = 503
    type = "server_error"
    default_code = "too_many_connections"
    retryable = True


class StorageUnavailable(GatewayError):
    """The database did not answer (in time) and nothing cached can stand in for it."""

    status = 503
    type = "server_error"
    default_code = "storage_unavailable"
    retryable = True


class ConversationsUnavailable(GatewayError):
    """The store of ``previous_response_id``'s state did not answer: the follow-up is refused
    rather than answered without the context the client meant."""

    status = 503
    type = "server_error"
    default_code = "conversation_state_unavailable"
    retryable = True


class ConfigError(Exception):
    """A configuration or policy file that does not validate. Start-up is refused.

    ``problems`` holds every (key, problem) found, each key with its line where the file's
    parser knows it; ``key`` and ``problem`` are the first of them."""

    def __init__(
        self, source: str, key: str, problem: str, more: Sequence[tuple[str, str]] = ()
    ) -> None:
        self.source = source
        self.problems: tuple[tuple[str, str], ...] = ((key, problem), *more)
        self.key = key
        self.problem = problem
        super().__init__(self._text())

    def _text(self) -> str:
        if len(self.problems) == 1:
            return f"{self.source}: {self.key}: {self.problem}"
        lines = "".join(f"\n  {key}: {problem}" for key, problem in self.problems)
        return f"{self.source}: {len(self.problems)} problems:{lines}"
