"""Secrets: the Secret type, credential references, and the broker that resolves them."""

from gateway.refs import CredentialRef, parse_ref
from gateway.secrets.broker import SecretBroker
from gateway.secrets.secret import Secret

__all__ = ["CredentialRef", "Secret", "SecretBroker", "parse_ref"]
