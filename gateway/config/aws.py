"""A Bedrock deployment's AWS settings: its region and, instead of an access key pair by
reference (the deployment's ``credential``), web identity (the token file EKS/IRSA mounts,
exchanged through STS AssumeRoleWithWebIdentity; ``gateway.providers.aws_credentials``).

Only locations are configured here: a role ARN, a file path, an endpoint. No value in this
section is a secret.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_SESSION_NAME = "sealgate"
DEFAULT_ROLE_SECONDS = 3600
REGION_PATTERN = r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class WebIdentity(_Strict):
    role_arn: str = Field(
        pattern=r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$", max_length=2048
    )
    token_file: str = Field(min_length=2, description="absolute path of the projected token")
    session_name: str = Field(DEFAULT_SESSION_NAME, pattern=r"^[\w+=,.@-]{2,64}$")
    duration_seconds: int = Field(DEFAULT_ROLE_SECONDS, ge=900, le=43200)
    # Default: the regional STS endpoint of the deployment's region.
    sts_endpoint: str | None = None

    @field_validator("token_file")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("expected an absolute path such as /var/run/secrets/eks/token")
        return value

    @field_validator("sts_endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected an absolute URL such as https://sts.us-east-1.amazonaws.com")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError("expected an endpoint URL without credentials, query or fragment")
        return value.rstrip("/")


class Aws(_Strict):
    # Default: the region in the base URL's host (bedrock-runtime.<region>.amazonaws.com).
    region: str | None = Field(None, pattern=REGION_PATTERN)
    web_identity: WebIdentity | None = None


def region_of(settings: Aws | None, host: str | None) -> str | None:
    """The region: configured, or read from a ``bedrock-runtime[-fips].<region>.amazonaws.com``
    host; None when neither says."""
    if settings is not None and settings.region is not None:
        return settings.region
    labels = (host or "").lower().split(".")
    if len(labels) == 4 and labels[0].startswith("bedrock") and labels[2:] == ["amazonaws", "com"]:
        return labels[1]
    return None


def sts_endpoint(settings: Aws | None, host: str | None) -> str | None:
    """Where web identity is exchanged: the configured endpoint, else the region's STS."""
    identity = settings.web_identity if settings is not None else None
    if identity is None:
        return None
    if identity.sts_endpoint is not None:
        return identity.sts_endpoint
    region = region_of(settings, host)
    return f"https://sts.{region}.amazonaws.com" if region else None
