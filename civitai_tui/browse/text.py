"""CivitAI's HTML descriptions made bounded plain text, safe for a terminal.

Creators write descriptions in HTML and may put anything in them: markup,
terminal escape sequences, bidi overrides, megabytes of nested tags.
:func:`description_text` keeps only the text (tags dropped, entities decoded,
block elements as line breaks, scripts and styles removed, a link's web address
kept after its words), then cleans each line with the project's one sanitiser,
:func:`~civitai_tui.security.display.printable` (escape sequences and control
characters removed, bidi and other invisible characters shown as ``<U+202E>``),
and bounds the whole; :func:`line_text` does the same for one-line values
(model, creator, file and version names). Nothing is interpreted: the result is
text the screen must show as text (a ``[b]`` stays ``[b]``; the TUI renders it
with markup off).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from civitai_tui.security.display import printable

#: HTML beyond this many characters is not parsed (a description is a few KB).
MAX_HTML = 256 * 1024
#: The longest description text returned.
MAX_TEXT = 16_000
#: The longest one-line value returned (a name).
MAX_LINE = 200
ELLIPSIS = "…"
TRUNCATED = "\n\n[description truncated]"

_BLOCKS = frozenset((
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption",
    "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav",
    "ol", "p", "pre", "section", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
))  # fmt: skip
_HIDDEN = frozenset({"script", "style", "noscript", "template", "iframe", "object", "svg", "head"})
_SPACES = re.compile(r"[ \u00a0]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def _bounded(text: str, limit: int, tail: str = ELLIPSIS) -> str:
    return text if len(text) <= limit else text[: limit - len(tail)].rstrip() + tail


def _clean(line: str) -> str:
    return _SPACES.sub(" ", printable(line)).strip()


def line_text(value: object, limit: int = MAX_LINE) -> str:
    """A one-line value (a name) as safe text: no escapes, no line breaks, bounded."""
    text = value if isinstance(value, str) else ""
    return _bounded(_clean(text[: limit * 4]), limit)


class _TextParser(HTMLParser):
    """Collects the text of an HTML fragment; block elements become line breaks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0
        self._links: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self._hidden += 1
        elif tag in _BLOCKS:
            self.parts.append("\n• " if tag == "li" else "\n")
        elif tag == "a":
            href = dict(attrs).get("href") or ""
            self._links.append(href if href.startswith(("https://", "http://")) else None)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in _BLOCKS:
            self.parts.append("\n")
        elif tag == "a" and self._links:
            href = self._links.pop()
            if href and not self._hidden:
                self.parts.append(f" <{href}>")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def description_text(html: object) -> str:
    """CivitAI's HTML description as bounded plain text, safe for a terminal."""
    source = html if isinstance(html, str) else ""
    cut = len(source) > MAX_HTML
    parser = _TextParser()
    parser.feed(source[:MAX_HTML])
    parser.close()
    lines = (_clean(line) for line in "".join(parser.parts).split("\n"))
    text = _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
    if cut or len(text) > MAX_TEXT:
        return _bounded(text, MAX_TEXT - len(TRUNCATED), tail="") + TRUNCATED
    return text
