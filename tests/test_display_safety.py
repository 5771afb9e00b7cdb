"""Server-supplied text never drives the terminal and is never parsed as markup."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
import unicodedata
from pathlib import Path

from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console
from textual.content import Content

from civitai_tui.security.display import markup_safe, printable, rich_text
from civitai_tui.tui.state import FileView, JobView
from civitai_tui.tui.widgets.job_detail import file_cells, job_header
from civitai_tui.tui.widgets.jobs_table import job_cells
from tests.loopback import serve_app

CLIPBOARD = "\x1b]52;c;ZXZpbA==\x07"
TITLE = "\x1b]0;pwned\x1b\\"
HOSTILE = (
    f"{CLIPBOARD}gone {TITLE}\x1b[2J\x9b31m [link=https://evil.example]click[/link] "
    "[$error]red[/] [@click=app.quit]quit[/] \u202egnp.exe\nline two\\"
)

#: Text an attacker builds from: escapes, C0/C1 controls, bidi, markup, backslashes.
hostile_text = st.lists(
    st.sampled_from(
        [*"\x1b[]\\/$@=\x07\x9b\x9d\u202e\u2066\n\r\t\x00\x7f\ud800aB é👍:", "link", "red", "smile"]
    ),
    max_size=30,
).map("".join)


def _no_controls(shown: str) -> None:
    assert not any(unicodedata.category(c) in ("Cc", "Cs") for c in shown), repr(shown)
    assert not any(unicodedata.category(c) == "Cf" and c != "\u200d" for c in shown), repr(shown)


@given(st.one_of(st.text(), hostile_text))
def test_printable_leaves_no_control_and_shows_bidi(text: str) -> None:
    shown = printable(text)
    _no_controls(shown)
    assert printable(shown) == shown
    if "\u202e" in text and not any(c in text for c in "\x1b\x9b\x9d"):
        assert "<U+202E>" in shown


@given(st.one_of(st.text(), hostile_text))
def test_markup_safe_is_read_back_as_plain_text_by_textual(text: str) -> None:
    content = Content.from_markup(f"[b]{markup_safe(text)}[/b]")
    assert content.plain.rstrip(" ") == printable(text).rstrip(" ")
    assert all(span.style == "b" for span in content.spans)


@given(st.one_of(st.text(), hostile_text))
def test_rich_text_is_never_parsed_by_rich(text: str) -> None:
    console = Console(file=io.StringIO(), width=500, color_system="truecolor", emoji=True)
    console.print(rich_text(text), ":smile:", soft_wrap=True)
    written = console.file.getvalue()
    assert printable(text) in written  # as is: no markup, no emoji codes replaced
    assert "\x1b]" not in written


def test_the_tui_shows_hostile_names_and_errors_as_plain_text() -> None:
    job = JobView(id="j1", name=HOSTILE, targets=(HOSTILE,), error=HOSTILE)
    job.files["f"] = FileView(key="f", name=HOSTILE, error=HOSTILE)
    header = Content.from_markup(job_header(job))
    assert "[link=https://evil.example]click[/link]" in header.plain
    assert "<U+202E>gnp.exe" in header.plain
    cells = list(file_cells(job.files["f"]))
    name_cell = job_cells(job)[0]
    for shown in [header.plain, name_cell, *cells]:
        _no_controls(shown.replace("\n", ""))
    assert cells[0] == printable(HOSTILE)


async def test_get_prints_a_hostile_api_message_inert(tmp_path: Path) -> None:
    async def not_found(_: web.Request) -> web.Response:
        return web.json_response({"message": HOSTILE}, status=404)

    app = web.Application()
    app.router.add_get("/api/v1/models/{id}", not_found)
    async with serve_app(app) as port:
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "CIVITAI_TUI_HOME": str(tmp_path / "home"), "CIVITAI_BASE_URL": base}
        env.pop("CIVITAI_API_KEY", None)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "civitai_tui", "get", "model:1", "--dest", str(tmp_path),
            env={**env, "COLUMNS": "300"},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    shown = out.decode() + err.decode()
    assert proc.returncode == 1
    assert "\x1b" not in shown and "\x9b" not in shown and "\u202e" not in shown
    assert "[link=https://evil.example]click[/link]" in shown
    assert "<U+202E>gnp.exe" in shown
    assert json.dumps(HOSTILE) not in shown
