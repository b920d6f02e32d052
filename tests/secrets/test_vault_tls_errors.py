"""How a failed TLS exchange with Vault is reported (pure: exceptions built the way requests and
urllib3 wrap them). A TLS 1.3 listener checks a client certificate after the handshake, so its
refusal reaches the client as an alert or, when the listener's reset arrives first, only as a
dropped connection, reported as SSLEOFError on Python 3.11 and ConnectionResetError on 3.13. With
a client certificate configured both read as a refusal of that certificate; without one a reset
is Vault being unreachable, as before."""

from __future__ import annotations

import ssl

import pytest
import requests
import urllib3.exceptions

from gateway.secrets.errors import BackendUnavailable
from gateway.secrets.vault import VaultTLSError, translate


def reset() -> requests.RequestException:
    cause = ConnectionResetError(104, "Connection reset by peer")
    return requests.ConnectionError(urllib3.exceptions.ProtocolError("Connection aborted.", cause))


def eof() -> requests.RequestException:
    cause = ssl.SSLEOFError(8, "EOF occurred in violation of protocol")
    cause.reason = None
    return requests.exceptions.SSLError(urllib3.exceptions.SSLError(cause))


def alert(reason: str) -> requests.RequestException:
    cause = ssl.SSLError(1, f"[SSL: {reason}] {reason.lower()}")
    cause.reason = reason
    return requests.exceptions.SSLError(urllib3.exceptions.SSLError(cause))


@pytest.mark.parametrize(
    ("dropped", "name"), [(reset, "ConnectionResetError"), (eof, "SSLEOFError")]
)
def test_a_dropped_connection_with_a_client_certificate_configured_names_that_certificate(
    dropped: type[requests.RequestException], name: str
) -> None:
    error = translate(dropped(), "login (token)", client_cert=True)
    assert isinstance(error, VaultTLSError)
    assert str(error) == (
        f"login (token): Vault closed the TLS connection ({name}), as a listener that requires "
        "client certificates does with one it does not trust; "
        "check secrets.vault.tls.client_cert and client_key"
    )


def test_without_a_client_certificate_a_reset_is_vault_unreachable_not_a_tls_refusal() -> None:
    error = translate(reset(), "secret/x", client_cert=False)
    assert isinstance(error, BackendUnavailable) and not isinstance(error, VaultTLSError)
    assert str(error) == "secret/x: Vault could not be reached (ConnectionError)"


def test_an_alert_from_vault_is_named_as_such_when_a_client_certificate_is_configured() -> None:
    error = translate(alert("TLSV1_ALERT_UNKNOWN_CA"), "secret/x", client_cert=True)
    assert isinstance(error, VaultTLSError)
    assert "Vault refused the TLS client certificate, or needs one (TLSV1_ALERT_UNKNOWN_CA)" in str(
        error
    )
