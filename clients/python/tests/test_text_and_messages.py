"""The pure parts: showing text safely, typed messages, fingerprints."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

from porter_client import (
    ErrorMessage,
    InvalidMessage,
    Say,
    ServerError,
    Who,
    fingerprint_of,
    parse_server_message,
    printable,
    printable_lines,
)
from porter_client.tls import normalise_fingerprint


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("ada", "ada"),
        ("héllo 😀 日本", "héllo 😀 日本"),
        ("\x1b[2J\x1b[H", r"\u{1b}[2J\u{1b}[H"),
        ("\x1b]0;TITLE\x07", r"\u{1b}]0;TITLE\u{7}"),
        ("AAAA\rforged", r"AAAA\rforged"),
        ("a\tb\0c\x7fd\x85e\x9b", r"a\tb\u{0}c\u{7f}d\u{85}e\u{9b}"),
        ("a\u202egnp.exe", r"a\u{202e}gnp.exe"),
        ("zero\u200bwidth", r"zero\u{200b}width"),
        ("line\u2028sep", r"line\u{2028}sep"),
        ("two\nlines", r"two\nlines"),
        # A joiner between two non-ASCII characters builds an emoji; inside
        # an ASCII name it hides, and is shown.
        ("👩\u200d💻", "👩\u200d💻"),
        ("bo\u200db", r"bo\u{200d}b"),
    ],
)
def test_printable_neutralises_what_a_terminal_would_obey(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_printable_lines_keeps_newlines_but_indents_them() -> None:
    assert printable_lines("line1\nbob: fake line") == "line1\n  | bob: fake line"
    assert printable_lines("a\r\nb", "> ") == "a\n> b"
    assert printable_lines("a\rb") == r"a\rb"


def test_messages_parse_into_typed_values_ignoring_unknown_fields() -> None:
    say = parse_server_message(
        {"type": "say", "text": "hi", "from": "ada", "seq": 4, "at": "t", "new": 1}
    )
    assert say == Say(text="hi", sender="ada", seq=4, at="t")
    assert isinstance(say, Say)
    assert say.raw["new"] == 1
    assert parse_server_message({"type": "who", "users": ["a", "b"]}) == Who(users=("a", "b"))
    error = parse_server_message({"type": "error", "code": "busy", "text": "full"})
    assert isinstance(error, ErrorMessage)
    assert error.ends_connection
    assert isinstance(error.exception(), ServerError)


def test_an_unknown_type_is_skipped_not_an_error() -> None:
    assert parse_server_message({"type": "from_the_future", "x": 1}) is None


@pytest.mark.parametrize(
    "obj",
    [
        {"type": "say", "text": "no from"},
        {"type": "say", "text": 1, "from": "a"},
        {"type": "say", "text": "t", "from": "a", "seq": -1},
        {"type": "say", "text": "t", "from": "a", "seq": True},
        {"type": "ask", "id": "user", "text": "?", "secret": "yes"},
        {"type": "who", "users": ["a", 2]},
        {"type": "welcome", "server": "s", "auth": "none"},
        {"type": "recovered", "complete": True},
    ],
)
def test_a_known_type_with_a_missing_or_mistyped_field_is_invalid(obj: dict[str, Any]) -> None:
    with pytest.raises(InvalidMessage):
        parse_server_message(obj)


def test_a_fingerprint_is_sha256_of_the_der_in_unpadded_base64() -> None:
    der = b"not really a certificate"
    expected = "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")
    assert fingerprint_of(der) == expected
    assert len(expected) == len("SHA256:") + 43
    assert normalise_fingerprint(f"  {expected}=\n") == expected


@pytest.mark.parametrize("bad", ["", "MD5:abc", "SHA256:", "SHA256:!!!!", "SHA256:YWJj"])
def test_a_malformed_fingerprint_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="fingerprint"):
        normalise_fingerprint(bad)
