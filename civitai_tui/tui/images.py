"""Preview pictures in the terminal: which renderer, at what size, decoded off the UI thread.

``textual-image`` draws with the Kitty graphics protocol or Sixel where the
terminal answers that it supports them, and with coloured half blocks (``▀``)
everywhere else. It asks the terminal when it is imported, which only works
before Textual takes over the terminal: this module is imported with the app,
before it runs. Headless runs (tests, snapshots) always draw half blocks, so a
snapshot shows the picture. Inside tmux the graphics protocols only work when
tmux passes them through (Sixel in a tmux built with it); otherwise the
terminal does not claim them and half blocks are drawn.

Decoding runs in a thread: the UI only ever gets a picture already shrunk to the
pixels the pane shows, so drawing it is cheap.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image as PILImage
from textual.widget import Widget
from textual_image import renderable
from textual_image._terminal import get_cell_size
from textual_image.widget import HalfcellImage
from textual_image.widget import Image as AutoImage

#: Decoding refuses pictures with more pixels than this (a "decompression bomb").
MAX_PIXELS = 40_000_000


class PreviewError(ValueError):
    """The bytes are not a picture PIL can read."""


@dataclass(frozen=True)
class Renderer:
    """How previews are drawn here, and how many pixels one terminal cell shows."""

    widget: type[Widget]
    name: str  # "kitty" | "sixel" | "half-block"
    cell_width: int  # pixels per cell, across
    cell_height: int  # pixels per cell, down

    def pixels(self, cells_wide: int, cells_high: int) -> tuple[int, int]:
        """The pixel size of a picture drawn in that many cells."""
        return cells_wide * self.cell_width, cells_high * self.cell_height


def renderer(headless: bool) -> Renderer:
    """The best renderer the terminal supports (half blocks when headless or unknown)."""
    detected = renderable.Image
    if headless or detected not in (renderable.SixelImage, renderable.TGPImage):
        return Renderer(HalfcellImage, "half-block", 1, 2)
    cell = get_cell_size()
    name = "sixel" if detected is renderable.SixelImage else "kitty"
    return Renderer(AutoImage, name, cell.width, cell.height)


def decode(data: bytes, max_size: tuple[int, int]) -> PILImage.Image:
    """``data`` as an RGB picture no larger than ``max_size`` pixels (aspect kept).

    Blocking: call it in a thread. Anything PIL cannot read raises :class:`PreviewError`.
    """
    try:
        with PILImage.open(io.BytesIO(data)) as opened:
            width, height = opened.size
            if width * height > MAX_PIXELS:
                raise PreviewError(f"picture too large ({width}x{height})")
            opened.draft("RGB", max_size)  # JPEG: decode at a smaller scale directly
            picture = opened.convert("RGB")
    except (OSError, SyntaxError, ValueError, PILImage.DecompressionBombError) as exc:
        if isinstance(exc, PreviewError):
            raise
        raise PreviewError(f"not a picture PIL can read ({exc})") from None
    picture.thumbnail(max_size, PILImage.Resampling.LANCZOS)
    return picture
