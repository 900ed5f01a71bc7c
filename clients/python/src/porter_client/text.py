"""Text from the other side, made safe to show to a person (PROTOCOL.md §2).

A ``text``, a ``from``, a user name, an error's or a ``bye``'s text come from
someone else. Written to a terminal as they are, they could clear the screen
(``ESC [2J``), retitle the window, move the cursor back over a line already
shown (``CR``), reverse what follows (U+202E) or start a new line that reads
as someone else's (``LF``). Everything shown to a person goes through
:func:`printable` or :func:`printable_lines` first.

The rules are those of the Rust client (``porter_wire::text``), so both show
the same text the same way:

- escaped: C0 controls, DEL and C1 controls; bidirectional controls; other
  invisible format characters (Unicode category Cf); U+2028 and U+2029; the
  Hangul fillers, which show as nothing;
- except the joiners U+200C and U+200D between two characters that are
  neither ASCII nor escaped (they build emoji sequences and the words of
  scripts that need them);
- an escaped character is written as Rust writes it: ``\\t``, ``\\r``,
  ``\\n``, otherwise ``\\u{X}`` with ``X`` in lowercase hexadecimal.
"""

from __future__ import annotations

import unicodedata
from typing import Optional

_ZWNJ = "\u200c"
_ZWJ = "\u200d"
_HANGUL_FILLERS = frozenset("\u115f\u1160\u3164\uffa0")
_SEPARATORS = frozenset("\u2028\u2029")
_SHORT_ESCAPES = {"\t": "\\t", "\r": "\\r", "\n": "\\n"}


def is_escaped(char: str) -> bool:
    """Whether ``char`` is always written escaped. The joiners are not: that
    depends on their neighbours."""
    code = ord(char)
    if code < 0x20 or 0x7F <= code <= 0x9F:
        return True
    if char in (_ZWNJ, _ZWJ):
        return False
    return unicodedata.category(char) == "Cf" or char in _SEPARATORS or char in _HANGUL_FILLERS


def printable(text: str) -> str:
    """``text`` for one line of a terminal: a newline is shown as ``\\n``.

    >>> printable("\\x1b[2Jhi")
    '\\\\u{1b}[2Jhi'
    """
    return _escape(text, None)


def printable_lines(text: str, indent: str = "  | ") -> str:
    """``text`` as a conversation line that may span several lines: each
    newline (``LF`` or ``CR LF``) is kept and the next line starts with
    ``indent``, so no line of it can pass for a line from another sender.

    >>> printable_lines("line1\\nbob: fake line")
    'line1\\n  | bob: fake line'
    """
    return _escape(text, indent)


def _escape(text: str, indent: Optional[str]) -> str:
    if text.isascii() and text.isprintable():
        return text
    out: list[str] = []
    # The character before, as shown: None when it was escaped.
    prev: Optional[str] = None
    for i, char in enumerate(text):
        nxt = text[i + 1] if i + 1 < len(text) else None
        kept: Optional[str]
        if char in "\r\n" and indent is not None:
            kept = None
        elif char in (_ZWNJ, _ZWJ):
            kept = char if _joins(prev, nxt) else None
        elif is_escaped(char):
            kept = None
        else:
            kept = char
        if kept is not None:
            out.append(kept)
        elif char == "\n" and indent is not None:
            out.append("\n" + indent)
        elif char == "\r" and indent is not None and nxt == "\n":
            pass  # CR LF is one newline; the LF does the work.
        else:
            out.append(_SHORT_ESCAPES.get(char, f"\\u{{{ord(char):x}}}"))
        prev = kept
    return "".join(out)


def _joins(prev: Optional[str], nxt: Optional[str]) -> bool:
    def visible(char: Optional[str]) -> bool:
        return (
            char is not None
            and not char.isascii()
            and not is_escaped(char)
            and char not in (_ZWNJ, _ZWJ)
        )

    return visible(prev) and visible(nxt)
