"""connect() against the real ``porter serve``, in every auth mode."""

from __future__ import annotations

import pytest
from conftest import LIMIT, PASSWORD, StartServer

from porter_client import (
    Ask,
    ConnectionEnded,
    Say,
    ServerError,
    UnansweredAsk,
    connect,
)


def test_auth_none_with_echo_answers_every_line_in_order(start_server: StartServer) -> None:
    server = start_server("--auth", "none", "--service", "echo")
    with connect("127.0.0.1", server.port, timeout=LIMIT) as session:
        assert session.auth == "none"
        assert session.token is None
        assert session.user.startswith("127.0.0.1:")
        lines = [f"line {i} grüße" for i in range(50)]
        for line in lines:
            session.say(line)
        for line in lines:
            assert session.recv(timeout=LIMIT) == Say(text=line, sender="server")


def test_auth_ip_asks_a_new_address_its_name_and_greets_it_next_time(
    start_server: StartServer,
) -> None:
    server = start_server("--auth", "ip", "--service", "echo")
    with pytest.raises(UnansweredAsk) as caught:
        connect("127.0.0.1", server.port, timeout=LIMIT)
    assert caught.value.id == "name"
    with connect("127.0.0.1", server.port, user="ada", timeout=LIMIT) as first:
        assert first.user == "ada"
    # Known now: no question, even without a name.
    with connect("127.0.0.1", server.port, timeout=LIMIT) as again:
        assert again.user == "ada"
        assert any("ada" in say.text for say in again.greetings)


def test_auth_ip_refuses_a_name_the_policy_refuses(start_server: StartServer) -> None:
    server = start_server("--auth", "ip")
    with pytest.raises(ServerError) as caught:
        connect("127.0.0.1", server.port, user="server", timeout=LIMIT)
    assert caught.value.code == "invalid_answer"


def test_password_registers_a_new_user_then_logs_in_and_resumes_by_token(
    start_server: StartServer,
) -> None:
    server = start_server("--auth", "password", "--service", "echo")
    with connect("127.0.0.1", server.port, user="ada", password=PASSWORD, timeout=LIMIT) as new:
        assert new.user == "ada"
        assert new.token is not None
        assert new.expires_at is not None
        assert not new.resumed
    with connect("127.0.0.1", server.port, user="ada", password=PASSWORD, timeout=LIMIT) as login:
        assert login.token is not None
        token = login.token
    with connect("127.0.0.1", server.port, token=token, timeout=LIMIT) as resumed:
        assert resumed.resumed
        assert resumed.user == "ada"
        assert resumed.token == token
        assert resumed.greetings == [Say(text="Welcome back, ada!", sender="server")]
        resumed.say("still me")
        assert resumed.recv(timeout=LIMIT) == Say(text="still me", sender="server")


def test_a_wrong_password_raises_bad_credentials(start_server: StartServer) -> None:
    server = start_server("--auth", "password")
    connect("127.0.0.1", server.port, user="ada", password=PASSWORD, timeout=LIMIT).close()
    with pytest.raises(ServerError) as caught:
        connect("127.0.0.1", server.port, user="ada", password="not the password", timeout=LIMIT)
    assert caught.value.code == "bad_credentials"
    assert "not the password" not in str(caught.value)


def test_an_unknown_user_with_registration_closed_is_bad_credentials(
    start_server: StartServer,
) -> None:
    server = start_server("--auth", "password", "--registration", "closed")
    with pytest.raises(ServerError) as caught:
        connect("127.0.0.1", server.port, user="nobody", password=PASSWORD, timeout=LIMIT)
    assert caught.value.code == "bad_credentials"


def test_a_password_the_policy_refuses_is_invalid_answer(start_server: StartServer) -> None:
    server = start_server("--auth", "password")
    with pytest.raises(ServerError) as caught:
        connect("127.0.0.1", server.port, user="ada", password="short", timeout=LIMIT)
    assert caught.value.code == "invalid_answer"


def test_no_password_for_a_password_server_is_an_unanswered_ask(
    start_server: StartServer,
) -> None:
    server = start_server("--auth", "password")
    with pytest.raises(UnansweredAsk) as caught:
        connect("127.0.0.1", server.port, user="ada", timeout=LIMIT)
    assert caught.value.id == "new_password"


def test_logout_revokes_the_token_and_an_invalid_token_falls_back_to_the_password(
    start_server: StartServer,
) -> None:
    server = start_server("--auth", "password", "--service", "echo")
    session = connect("127.0.0.1", server.port, user="ada", password=PASSWORD, timeout=LIMIT)
    token = session.token
    assert token is not None
    assert session.logout(timeout=LIMIT) == "logged out"
    assert session.closed
    assert session.token is None
    with pytest.raises(ServerError) as caught:
        connect("127.0.0.1", server.port, token=token, timeout=LIMIT)
    assert caught.value.code == "session_invalid"
    # Not fatal when there is another way in.
    with connect(
        "127.0.0.1", server.port, token=token, user="ada", password=PASSWORD, timeout=LIMIT
    ) as again:
        assert not again.resumed
        assert again.token is not None
        assert again.token != token


def test_logout_without_a_session_is_unexpected_and_the_conversation_goes_on(
    start_server: StartServer,
) -> None:
    server = start_server("--auth", "none", "--service", "echo")
    with connect("127.0.0.1", server.port, timeout=LIMIT) as session:
        with pytest.raises(ServerError) as caught:
            session.logout(timeout=LIMIT)
        assert caught.value.code == "unexpected"
        session.say("still here")
        assert session.recv(timeout=LIMIT) == Say(text="still here", sender="server")


def test_an_ask_callback_answers_what_was_not_given_and_sees_refusals(
    start_server: StartServer,
) -> None:
    server = start_server("--auth", "password")
    connect("127.0.0.1", server.port, user="ada", password=PASSWORD, timeout=LIMIT).close()
    asked: list[Ask] = []

    def person(ask: Ask) -> str:
        asked.append(ask)
        return "a wrong guess" if len(asked) == 1 else PASSWORD

    with connect("127.0.0.1", server.port, user="ada", ask=person, timeout=LIMIT) as session:
        assert session.user == "ada"
    assert [(a.id, a.secret) for a in asked] == [("password", True), ("password", True)]
    assert asked[0].error is None
    assert asked[1].error is not None
    assert asked[1].error.code == "bad_credentials"


def test_a_server_at_its_limit_refuses_with_busy(start_server: StartServer) -> None:
    server = start_server("--auth", "none", "--max-connections", "1")
    with connect("127.0.0.1", server.port, timeout=LIMIT):
        with pytest.raises(ConnectionEnded) as caught:
            connect("127.0.0.1", server.port, timeout=LIMIT)
        assert caught.value.code == "busy"
