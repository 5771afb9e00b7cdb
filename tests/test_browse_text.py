"""Hostile descriptions and names become bounded, inert plain text."""

from __future__ import annotations

import time
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from civitai_tui.browse.text import (
    MAX_LINE,
    MAX_TEXT,
    TRUNCATED,
    description_text,
    line_text,
)

ESCAPES = ["\x1b[2J", "\x1b]52;c;ZXZpbA==\x07", "\x9b31m", "\x1bP+q\x1b\\", "\u202e", "\r", "\x00"]
TAGS = ["p", "div", "b", "a", "script", "style", "li", "ul", "br", "span", "svg", "iframe"]


def _unsafe(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Cs", "Cf") and char not in "\n\u200d"


@st.composite
def hostile_html(draw: st.DrawFn, depth: int = 0) -> str:
    """Nested tags, attributes, entities, escapes and free text."""
    pieces = draw(
        st.lists(
            st.one_of(
                st.text(max_size=20),
                st.sampled_from(ESCAPES),
                st.sampled_from(["&lt;b&gt;", "&#27;[31m", "&#x9b;", "&amp;", "&#0;", "[b]x[/b]"]),
                st.builds(
                    lambda tag, attr, inner: f'<{tag} href="{attr}" onclick="x">{inner}</{tag}>',
                    st.sampled_from(TAGS),
                    st.text(max_size=10),
                    hostile_html(depth + 1) if depth < 3 else st.text(max_size=10),
                ),
                st.sampled_from(["<p", "</", "<!--", "<![CDATA[", "<script>", "<style>x"]),
            ),
            max_size=6,
        )
    )
    return "".join(pieces)


@given(hostile_html())
def test_a_hostile_description_comes_out_as_inert_bounded_text(html: str) -> None:
    text = description_text(html)
    assert not any(_unsafe(c) for c in text)
    assert len(text) <= MAX_TEXT
    assert "\x1b" not in text and "\x9b" not in text


@given(st.text(max_size=300))
def test_any_name_becomes_one_safe_bounded_line(value: str) -> None:
    text = line_text(value)
    assert "\n" not in text and len(text) <= MAX_LINE
    assert not any(_unsafe(c) for c in text)
    assert text == text.strip()


def test_structure_becomes_lines_and_words_survive() -> None:
    html = (
        "<h1>Trio</h1><p>Use <b>sks</b> &amp; <i>ohwx</i>.</p>"
        "<ul><li>one</li><li>two</li></ul>"
        '<p>See <a href="https://civitai.com/models/1">the page</a>.</p>'
        "<script>alert(1)</script><style>p{}</style>"
    )
    assert description_text(html) == (
        "Trio\n\nUse sks & ohwx.\n\n• one\n\n• two\n\nSee the page <https://civitai.com/models/1>."
    )


def test_escapes_written_as_entities_are_removed_after_decoding() -> None:
    text = description_text("<p>red&#27;[31m and &#x202e;gnp.exe and \x9b2J &#x85;</p>")
    # &#27; decodes to nothing (an invalid character reference), &#x85; to "…" (cp1252);
    # a bidi override is shown, never obeyed
    assert text == "red[31m and <U+202E>gnp.exe and \u2026"


def test_markup_lookalikes_stay_as_written_text() -> None:
    assert description_text("<p>[bold red]x[/] &lt;b&gt;</p>") == "[bold red]x[/] <b>"


def test_a_javascript_link_is_not_kept() -> None:
    assert description_text('<a href="javascript:alert(1)">click</a>') == "click"


def test_huge_html_is_cut_quickly_and_says_so() -> None:
    html = "<div>" * 200_000 + "word " * 2_000_000
    started = time.process_time()
    text = description_text(html)
    assert time.process_time() - started < 5
    assert text.endswith(TRUNCATED) and len(text) <= MAX_TEXT


def test_non_strings_become_empty_text() -> None:
    assert description_text(None) == "" and line_text(42) == ""
