"""Two sessions in the real server's chat room."""

from __future__ import annotations

from typing import Callable

import pytest
from conftest import LIMIT, PASSWORD, StartServer

from porter_client import ErrorMessage, Event, Say, ServerError, Session, connect
from porter_client.messages import ServerMessage


def next_matching(session: Session, wanted: Callable[[ServerMessage], bool]) -> ServerMessage:
    """The first message ``wanted`` accepts, skipping others (events...)."""
    while True:
        message = session.recv(timeout=LIMIT)
        assert message is not None, "the server closed the connection"
        if wanted(message):
            return message


def test_a_line_reaches_the_other_participant_with_its_sender_and_seq(
    start_server: StartServer,
) -> None:
    server = start_server("--auth", "password", "--max-registrations-per-hour", "0")
    ada = connect("127.0.0.1", server.port, user="ada", password=PASSWORD, timeout=LIMIT)
    bob = connect("127.0.0.1", server.port, user="bob", password=PASSWORD, timeout=LIMIT)
    with ada, bob:
        joined = next_matching(ada, lambda m: isinstance(m, Event))
        assert isinstance(joined, Event)
        assert (joined.kind, joined.user) == ("joined", "bob")
        ada.say("hello, bob")
        line = next_matching(bob, lambda m: isinstance(m, Say))
        assert isinstance(line, Say)
        assert (line.text, line.sender, line.to, line.replay) == ("hello, bob", "ada", None, False)
        assert line.seq is not None
        assert line.at is not None
        bob.say("hi, ada")
        reply = next_matching(ada, lambda m: isinstance(m, Say))
        assert isinstance(reply, Say)
        assert (reply.text, reply.sender, reply.seq) == ("hi, ada", "bob", line.seq + 1)


def test_who_lists_the_room_and_keeps_what_arrived_meanwhile(start_server: StartServer) -> None:
    server = start_server("--auth", "ip")
    with connect("127.0.0.1", server.port, user="ada", timeout=LIMIT) as ada:
        # One address, one name: the second participant comes from auth none.
        assert ada.who(timeout=LIMIT) == ["ada"]
    server2 = start_server("--auth", "none")
    one = connect("127.0.0.1", server2.port, timeout=LIMIT)
    two = connect("127.0.0.1", server2.port, timeout=LIMIT)
    with one, two:
        two.say("before who")
        # Once two has its answer, the room has taken two's line (a
        # connection's messages are handled in order).
        two.who(timeout=LIMIT)
        users = one.who(timeout=LIMIT)
        assert users == sorted([one.user, two.user])
        # The line and the event that came before the answer are not lost.
        kept = [one.recv(timeout=LIMIT), one.recv(timeout=LIMIT)]
        assert any(isinstance(m, Event) and m.user == two.user for m in kept)
        assert any(isinstance(m, Say) and m.text == "before who" for m in kept)


def test_who_on_an_echo_server_is_unexpected(start_server: StartServer) -> None:
    server = start_server("--auth", "none", "--service", "echo")
    with connect("127.0.0.1", server.port, timeout=LIMIT) as session:
        with pytest.raises(ServerError) as caught:
            session.who(timeout=LIMIT)
        assert caught.value.code == "unexpected"


def test_a_private_line_reaches_its_recipient_alone(start_server: StartServer) -> None:
    server = start_server("--auth", "password", "--max-registrations-per-hour", "0")
    sessions = [
        connect("127.0.0.1", server.port, user=name, password=PASSWORD, timeout=LIMIT)
        for name in ("ada", "bob", "cy")
    ]
    ada, bob, cy = sessions
    try:
        ada.private("bob", "psst")
        ada.say("for all")
        line = next_matching(bob, lambda m: isinstance(m, Say))
        assert isinstance(line, Say)
        assert (line.text, line.sender, line.to, line.seq) == ("psst", "ada", "bob", None)
        # cy sees the room line, and never the private one before it.
        seen = next_matching(cy, lambda m: isinstance(m, Say))
        assert isinstance(seen, Say)
        assert seen.text == "for all"
        ada.private("nobody", "hello?")
        refusal = next_matching(ada, lambda m: isinstance(m, ErrorMessage))
        assert isinstance(refusal, ErrorMessage)
        assert refusal.code == "unknown_user"
    finally:
        for session in sessions:
            session.close()


def test_a_newcomer_receives_the_history_as_replay(start_server: StartServer) -> None:
    server = start_server("--auth", "none", "--history", "5")
    with connect("127.0.0.1", server.port, timeout=LIMIT) as first:
        for i in range(3):
            first.say(f"old {i}")
        # The room has taken them once who answers after them.
        first.who(timeout=LIMIT)
        with connect("127.0.0.1", server.port, timeout=LIMIT) as late:
            replayed = [late.recv(timeout=LIMIT) for _ in range(3)]
            assert [(m.text, m.replay) for m in replayed if isinstance(m, Say)] == [
                ("old 0", True),
                ("old 1", True),
                ("old 2", True),
            ]


def test_hello_may_carry_since(start_server: StartServer) -> None:
    # PROTOCOL 1.1: the server replays the lines after `since`, then sends
    # `recovered`. docs/PROTOCOL.md says Porter's server does not replay by
    # `since` yet; the handshake must succeed with it all the same.
    server = start_server("--auth", "none", "--history", "0")
    with connect("127.0.0.1", server.port, since=0, timeout=LIMIT) as session:
        assert session.who(timeout=LIMIT) == [session.user]


def test_leaving_is_seen_by_the_others(start_server: StartServer) -> None:
    server = start_server("--auth", "none")
    with connect("127.0.0.1", server.port, timeout=LIMIT) as stays:
        leaver = connect("127.0.0.1", server.port, timeout=LIMIT)
        name = leaver.user
        leaver.close()
        left = next_matching(stays, lambda m: isinstance(m, Event) and m.kind == "left")
        assert isinstance(left, Event)
        assert left.user == name
