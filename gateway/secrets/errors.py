"""What a secret backend can fail with, before the broker turns it into a request's error.

    BackendError              a secret could not be produced (the message is for the log)
    ├── BackendUnavailable    unreachable, sealed, timed out: cached keys may still serve
    ├── AccessDenied          the backend refused (policy, login): a configuration error
    └── SecretMissing         no such path, version or field: a configuration error

Messages name the credential *reference* and the reason; never a value, a token or a backend's
response text. Requests never see these messages: the broker answers them with a 503 that names
no path (``gateway.errors.SecretUnavailable``).
"""

from __future__ import annotations


class BackendError(Exception):
    """A secret could not be produced."""


class BackendUnavailable(BackendError):
    """The backend could not be asked (down, sealed, slow): a later attempt may succeed."""


class AccessDenied(BackendError):
    """The backend refused the gateway's identity or policy: fix the configuration."""


class SecretMissing(BackendError):
    """The reference names nothing (path, version or field): fix the configuration."""
