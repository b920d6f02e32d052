"""The governance branches of the error tree (see gateway/errors.py):

RateLimited                 429 rate_limit_exceeded   a request or token limit is full
└── BudgetExceeded          429 budget_exceeded       a hard budget would be passed
Conflict                    409 conflict              the name or scope is taken
LimitsUnavailable           503 limits_unavailable    shared counters unreachable, fail closed
"""

from __future__ import annotations

from gateway.errors import GatewayError, RateLimited


class BudgetExceeded(RateLimited):
    default_code = "budget_exceeded"


class Conflict(GatewayError):
    status = 409
    type = "invalid_request_error"
    default_code = "conflict"


class LimitsUnavailable(GatewayError):
    status = 503
    type = "server_error"
    default_code = "limits_unavailable"
    retryable = True
