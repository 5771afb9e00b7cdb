"""Browse's parts alone: picture decoding, column layouts, keys, text from the API."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from textual.binding import Binding

from civitai_tui.config import Config
from civitai_tui.demo import demo_config
from civitai_tui.tui import images
from civitai_tui.tui.images import MAX_PIXELS, PreviewError, decode, renderer
from civitai_tui.tui.screens.browse import BrowseScreen
from civitai_tui.tui.screens.pick_files import PickFilesScreen
from civitai_tui.tui.widgets.browse_results import BrowseResults, compact_count, layout_for
from civitai_tui.tui.widgets.model_detail import description_lines
from tests.tui.scripted_browse import picture


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_a_picture_is_shrunk_into_the_box_keeping_its_shape(fmt: str) -> None:
    out = io.BytesIO()
    Image.new("RGB", (512, 768), (10, 20, 30)).save(out, format=fmt)
    shrunk = decode(out.getvalue(), (60, 18))
    assert shrunk.mode == "RGB" and shrunk.size == (12, 18)


def test_a_decompression_bomb_is_refused_before_decoding() -> None:
    out = io.BytesIO()
    Image.new("1", (8000, 8000)).save(out, format="PNG")  # small file, 64 M pixels
    assert MAX_PIXELS < 8000 * 8000
    with pytest.raises(PreviewError, match="too large"):
        decode(out.getvalue(), (60, 18))


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=512) | st.just(picture(1)[:200]))
def test_any_bytes_give_a_small_picture_or_a_preview_error(data: bytes) -> None:
    try:
        shrunk = decode(data, (40, 20))
    except PreviewError as err:
        assert str(err)
    else:
        assert shrunk.width <= 40 and shrunk.height <= 20


def test_at_80_columns_every_result_column_shows() -> None:
    layout = layout_for(80)
    assert layout.keys == ("name", "creator", "type", "base", "downloads", "rating", "date")
    assert layout.name_width >= 14
    narrow = layout_for(54)  # beside the detail pane at 120 columns
    assert "name" in narrow.keys and "downloads" in narrow.keys and "rating" not in narrow.keys


def test_counts_fit_five_cells() -> None:
    assert [compact_count(n) for n in (0, 999, 1234, 99_999, 123_456, 3_400_000)] == [
        "0",
        "999",
        "1.2k",
        "100k",
        "123k",
        "3.4M",
    ]


def test_description_keeps_paragraphs_and_drops_escapes() -> None:
    lines = description_lines("one\x1b[2J\n\n\n\ntwo \x1b]52;c;SGk=\x07[b]x[/b]\r\nthree")
    assert lines == ["one", "", "two [b]x[/b]", "three"]


@pytest.mark.parametrize("owner", [BrowseScreen, BrowseResults, PickFilesScreen])
def test_every_browse_binding_has_an_id_a_description_and_a_tooltip(owner: type) -> None:
    for binding in owner.BINDINGS:
        assert isinstance(binding, Binding)
        assert binding.id and binding.description, binding
        assert binding.tooltip or binding.id.startswith("results."), binding


def test_the_renderer_follows_what_the_terminal_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images.renderable, "Image", images.renderable.TGPImage)
    kitty = renderer(headless=False)
    assert kitty.name == "kitty" and kitty.cell_width > 1  # real pixels per cell
    monkeypatch.setattr(images.renderable, "Image", images.renderable.SixelImage)
    assert renderer(headless=False).name == "sixel"
    assert renderer(headless=True).name == "half-block"  # tests and snapshots see pictures
    monkeypatch.setattr(images.renderable, "Image", images.renderable.UnicodeImage)  # no tty
    half = renderer(headless=False)
    assert (half.name, half.pixels(10, 4)) == ("half-block", (10, 8))


def test_the_demo_gives_browse_a_destination(tmp_path: Path) -> None:
    models = tmp_path / 'odd "name" \\ dir' / "models"
    trustme.CA().cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    path = tmp_path / "config.toml"
    path.write_text(demo_config(tmp_path / "ca.pem", models))
    config = Config.load(path)
    assert config.get("bulk.dest") == str(models)  # Browse's `a` and `L` use it
    assert config.get("network.ca_bundle") == str(tmp_path / "ca.pem")
