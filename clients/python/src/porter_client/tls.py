"""TLS to a Porter server, and who the server is (PROTOCOL.md §1a).

A Porter server's certificate is usually self-signed: no certificate
authority vouches for it, so the client recognises the server by its
**fingerprint**, the SHA-256 of the certificate's DER encoding written as
OpenSSH writes key fingerprints (``SHA256:`` and unpadded base64). The
server's operator reads it with ``porter fingerprint``.

The threat: someone between the client and the server (a hostile Wi-Fi, a
rerouted address) presents their own certificate and reads the password.
So the check happens right after the TLS handshake and *before a single
byte of the Porter dialogue is sent*; a mismatch raises
:class:`~porter_client.errors.FingerprintMismatch` showing both values.

Exactly one way of trusting the server must be chosen:

- ``fingerprint="SHA256:..."``: pinned; anything else is refused;
- ``cafile=PATH``: ordinary PKI, with the certificate chain and the host
  name checked (for a server with a certificate from an authority);
- ``trust_on_first_use=True``: any certificate is accepted, and the session
  shows its ``fingerprint`` so that the caller can store it and pin it next
  time, as SSH does with ``known_hosts``. It must be asked for by name,
  because on a first connection it trusts whoever answers.

With none of them, :func:`establish` completes the TLS handshake (so that
the refusal can show the fingerprint to a person) and raises
:class:`~porter_client.errors.UnverifiedServer`, having sent nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
import ssl
from typing import Optional

from porter_client.errors import FingerprintMismatch, TlsError, UnverifiedServer
from porter_client.framing import PorterSSLSocket

FINGERPRINT_PREFIX = "SHA256:"


def fingerprint_of(der: bytes) -> str:
    """The fingerprint of a certificate given in DER: ``SHA256:`` and the
    digest in unpadded standard base64."""
    digest = hashlib.sha256(der).digest()
    return FINGERPRINT_PREFIX + base64.b64encode(digest).decode("ascii").rstrip("=")


def normalise_fingerprint(fingerprint: str) -> str:
    """``fingerprint`` as :func:`fingerprint_of` writes it: surrounding blanks
    and base64 padding dropped, the ``SHA256:`` prefix required.

    Raises ``ValueError`` for anything that is not a SHA-256 fingerprint.
    """
    value = fingerprint.strip()
    if not value.startswith(FINGERPRINT_PREFIX):
        raise ValueError(f"a fingerprint starts with {FINGERPRINT_PREFIX!r}, as in SHA256:q1Xr...")
    body = value[len(FINGERPRINT_PREFIX) :].rstrip("=")
    try:
        digest = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except ValueError:
        raise ValueError("a fingerprint's digest is standard base64") from None
    if len(digest) != hashlib.sha256().digest_size:
        raise ValueError("a SHA256 fingerprint holds 32 bytes")
    return FINGERPRINT_PREFIX + body


def client_context(cafile: Optional[str] = None) -> ssl.SSLContext:
    """A client context that makes :class:`PorterSSLSocket`\\ s.

    Without ``cafile`` the chain is not verified (the caller checks the
    fingerprint instead); with it, the chain and the host name are.
    """
    if cafile is not None:
        context = ssl.create_default_context(cafile=cafile)
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.sslsocket_class = PorterSSLSocket
    return context


def check_trust_options(
    fingerprint: Optional[str], cafile: Optional[str], trust_on_first_use: bool
) -> Optional[str]:
    """Checks that at most one way of trusting is chosen, and returns the
    normalised fingerprint if one is given. Raises ``ValueError``."""
    chosen = [fingerprint is not None, cafile is not None, trust_on_first_use]
    if sum(chosen) > 1:
        raise ValueError("choose one of fingerprint=, cafile= and trust_on_first_use=True")
    return normalise_fingerprint(fingerprint) if fingerprint is not None else None


def establish(
    sock: socket.socket,
    host: str,
    *,
    fingerprint: Optional[str] = None,
    cafile: Optional[str] = None,
    trust_on_first_use: bool = False,
) -> tuple[PorterSSLSocket, str]:
    """Runs TLS over the connected ``sock`` and checks who answered.

    Returns the TLS socket and the server's fingerprint. On any refusal the
    connection is closed, nothing having been sent over it.

    Raises ``ValueError`` for a malformed ``fingerprint`` or for more than
    one way of trusting, :class:`FingerprintMismatch`,
    :class:`UnverifiedServer`, and :class:`TlsError` when TLS fails.
    """
    expected = check_trust_options(fingerprint, cafile, trust_on_first_use)
    context = client_context(cafile)
    try:
        tls = context.wrap_socket(sock, server_hostname=host)
    except ssl.SSLError as err:
        sock.close()
        raise TlsError(f"TLS with {host} failed: {err}") from err
    if not isinstance(tls, PorterSSLSocket):  # pragma: no cover - set by client_context
        tls.close()
        raise TypeError("the context did not make a PorterSSLSocket")
    try:
        der = tls.getpeercert(binary_form=True)
        if der is None:
            raise TlsError("the server presented no certificate")
        got = fingerprint_of(der)
        if expected is not None:
            if not hmac.compare_digest(expected.encode("ascii"), got.encode("ascii")):
                raise FingerprintMismatch(expected, got)
        elif cafile is None and not trust_on_first_use:
            raise UnverifiedServer(got)
    except BaseException:
        tls.close()
        raise
    return tls, got
