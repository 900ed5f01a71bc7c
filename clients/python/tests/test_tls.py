"""TLS against the real ``porter serve --tls``: the server is recognised by
its certificate's fingerprint, checked before anything is sent."""

from __future__ import annotations

import pytest
from conftest import LIMIT, PASSWORD, Server, StartServer
from fake_tls import CERT, DATA, FakeTlsServer, cert_fingerprint

from porter_client import (
    FingerprintMismatch,
    PorterSSLSocket,
    Say,
    TlsError,
    UnverifiedServer,
    connect,
)
from porter_client.tls import fingerprint_of

#: A well-formed fingerprint no certificate of the test will have.
WRONG = "SHA256:" + "A" * 43


def tls_server(start_server: StartServer, *args: str) -> Server:
    return start_server("--tls", "--max-registrations-per-hour", "0", *args)


def test_the_printed_fingerprint_is_what_porter_fingerprint_says(
    start_server: StartServer,
) -> None:
    server = tls_server(start_server, "--auth", "none")
    assert server.printed_fingerprint() == server.fingerprint()


def test_a_password_chat_over_tls_with_the_right_fingerprint(start_server: StartServer) -> None:
    server = tls_server(start_server, "--auth", "password")
    pin = server.fingerprint()
    ada = connect(
        "127.0.0.1", server.port, user="ada", password=PASSWORD, fingerprint=pin, timeout=LIMIT
    )
    bob = connect(
        "127.0.0.1", server.port, user="bob", password=PASSWORD, tls=True, fingerprint=pin,
        timeout=LIMIT,
    )  # fmt: skip
    with ada, bob:
        assert ada.fingerprint == pin
        ada.say("over tls")
        while True:
            message = bob.recv(timeout=LIMIT)
            assert message is not None
            if isinstance(message, Say):
                break
        assert (message.text, message.sender) == ("over tls", "ada")
        token = ada.token
    with connect("127.0.0.1", server.port, token=token, fingerprint=pin, timeout=LIMIT) as again:
        assert again.resumed


def test_a_wrong_fingerprint_is_refused_showing_both(start_server: StartServer) -> None:
    server = tls_server(start_server, "--auth", "password")
    with pytest.raises(FingerprintMismatch) as caught:
        connect(
            "127.0.0.1", server.port, user="ada", password=PASSWORD, fingerprint=WRONG,
            timeout=LIMIT,
        )  # fmt: skip
    assert caught.value.expected == WRONG
    assert caught.value.got == server.fingerprint()
    assert WRONG in str(caught.value)
    assert server.fingerprint() in str(caught.value)


def test_tls_without_a_way_to_trust_the_server_refuses_and_shows_its_fingerprint(
    start_server: StartServer,
) -> None:
    server = tls_server(start_server, "--auth", "none")
    with pytest.raises(UnverifiedServer) as caught:
        connect("127.0.0.1", server.port, tls=True, timeout=LIMIT)
    assert caught.value.fingerprint == server.fingerprint()


def test_trust_on_first_use_must_be_asked_for_and_reports_the_fingerprint(
    start_server: StartServer,
) -> None:
    server = tls_server(start_server, "--auth", "none", "--service", "echo")
    with connect(
        "127.0.0.1", server.port, tls=True, trust_on_first_use=True, timeout=LIMIT
    ) as session:
        assert session.fingerprint == server.fingerprint()
        sock = session.socket
        assert isinstance(sock, PorterSSLSocket)
        der = sock.getpeercert(binary_form=True)
        assert der is not None
        assert fingerprint_of(der) == session.fingerprint
        session.say("echo over tls")
        assert session.recv(timeout=LIMIT) == Say(text="echo over tls", sender="server")


# --- against a fake TLS server: what reaches the server --------------------
#
# These need no `porter serve --tls`: see fake_tls.py.


def test_the_pinned_fingerprint_lets_the_handshake_start() -> None:
    server = FakeTlsServer()
    with connect("127.0.0.1", server.port, fingerprint=cert_fingerprint(), timeout=LIMIT) as s:
        assert s.user == "fake"
        assert s.fingerprint == cert_fingerprint()
    assert b'"hello"' in server.finish()


def test_a_wrong_fingerprint_sends_the_server_nothing() -> None:
    server = FakeTlsServer()
    with pytest.raises(FingerprintMismatch) as caught:
        connect("127.0.0.1", server.port, user="ada", password=PASSWORD, fingerprint=WRONG)
    assert caught.value.got == cert_fingerprint()
    assert server.finish() == b""


def test_tls_with_nothing_to_trust_sends_the_server_nothing() -> None:
    server = FakeTlsServer()
    with pytest.raises(UnverifiedServer) as caught:
        connect("127.0.0.1", server.port, tls=True, timeout=LIMIT)
    assert caught.value.fingerprint == cert_fingerprint()
    assert server.finish() == b""


def test_a_certificate_authority_checks_the_chain_and_the_host_name() -> None:
    server = FakeTlsServer()
    with connect("localhost", server.port, cafile=str(CERT), timeout=LIMIT) as s:
        assert s.fingerprint == cert_fingerprint()
    server.finish()
    other = FakeTlsServer()
    with pytest.raises(TlsError):
        connect("127.0.0.1", other.port, cafile=str(DATA / "other-ca.pem"), timeout=LIMIT)
    assert other.finish() == b""


def test_only_one_way_of_trusting_may_be_given() -> None:
    with pytest.raises(ValueError, match="one of"):
        connect("127.0.0.1", 1, fingerprint=cert_fingerprint(), trust_on_first_use=True)
