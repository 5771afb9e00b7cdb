"""Text from outside (API names and messages, file names, server errors) made safe to show.

A terminal obeys escape sequences (``ESC ] 52`` writes the clipboard, ``ESC ] 0``
the window title, CSI moves the cursor or recolours the screen), and Rich and
Textual parse ``[...]`` as markup (``[link=…]`` makes a clickable link).
:func:`printable` removes every escape sequence and control character (a line
break becomes a space) and shows bidi overrides and other invisible format
characters as ``<U+202E>``, so a name cannot pretend to be another;
:func:`markup_safe` also escapes Textual's markup (which reads ``[$var]``,
``[B]`` and ``[ red]`` as tags too) for strings pasted into markup, and
:func:`rich_text` makes a Rich ``Text`` that Rich never parses (Rich markup also
turns ``:smile:`` into an emoji). Every server-supplied string the CLI or the TUI
shows goes through one of these.
"""

from __future__ import annotations

import re
import unicodedata

from rich.text import Text

#: ESC-introduced sequences: CSI (``ESC [`` … final byte), OSC/DCS/APC/PM/SOS
#: (up to BEL or ST, or to the end), and two-byte escapes; plus their 8-bit C1 forms.
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]P_^X]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
)
_BREAKS = re.compile(r"[\t\n\r\v\f\x85\u2028\u2029]+")


def _visible(char: str) -> str:
    category = unicodedata.category(char)
    if category == "Cc":
        return ""
    if category == "Cs" or (category == "Cf" and char != "\u200d"):  # ZWJ joins emoji: kept
        return f"<U+{ord(char):04X}>"
    return char


def printable(text: object) -> str:
    """``text`` as one line a terminal shows as is: no escapes, no controls, bidi visible."""
    value = _ESCAPES.sub("", str(text))
    value = _BREAKS.sub(" ", value)
    if value.isprintable():
        return value
    return "".join(_visible(c) for c in value)


def markup_safe(text: object) -> str:
    """:func:`printable` ``text`` for Textual markup: every ``[`` escaped, and a trailing
    backslash (it would escape the tag that follows) kept apart by a space."""
    value = printable(text).replace("[", "\\[")
    return value + " " if value.endswith("\\") else value


def rich_text(text: object, style: str = "") -> Text:
    """:func:`printable` ``text`` as a Rich ``Text``: Rich never parses it (no markup, no
    ``:emoji:`` codes); one line, cropped rather than wrapped, as a table cell expects."""
    return Text(printable(text), style=style, no_wrap=True, end="")
