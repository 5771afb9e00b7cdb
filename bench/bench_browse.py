"""Browse benchmark (headless, 120x40): first results painted, scrolling 1,000 results, previews.

The real app runs headless against the scripted Browse catalogue of the tests
(1,000 models, pages of 20 as the screen asks by default), so the figures are
the UI's own cost, not the network's or the engine's:

* first results: from the moment the search answer is returned to the end of
  the first screen update that shows it (``App._display``), target <= 300 ms;
* scrolling: ``down`` pressed through all 1,000 results (pages load as the
  cursor nears the end), each sample from the key sent to the end of the screen
  update that shows the moved cursor; p50/p90, target p90 <= 100 ms;
* previews: per picture (PNG, JPEG and WebP at 128x192, the size a half-block
  pane asks for, and full-size 512x768 and 1024x1536), the
  decode to the pane's box (:func:`civitai_tui.tui.images.decode`, the thread's
  work) plus drawing it as half blocks into a 60x9 cell area, target <= 150 ms.

With ``--terminal`` (needs tmux) the same app runs in a detached tmux session
at 120x40 (a real terminal driver, as ``bench_keys`` does for the Jobs screen):
each ``Down`` is sent with ``tmux send-keys`` and timed until ``capture-pane``
shows the moved cursor, through all the results; then ``enter`` is timed until
the detail's preview shows (half blocks: tmux 3.3 answers no Sixel/Kitty query).

Run: ``.venv/bin/python -m bench.bench_browse [--results 1000] [--terminal]``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image
from rich.console import Console
from textual_image.renderable.halfcell import Image as HalfcellRenderable

from bench.bench_keys import SESSION, changed, plain, press, tmux, wait_screen
from civitai_tui.tui.app import make_app
from civitai_tui.tui.images import decode
from civitai_tui.tui.screens.browse import BrowseScreen
from tests.tui.scripted_browse import ScriptedBrowse

SIZE = (120, 40)
PREVIEW_BOX = (60, 18)  # 60 cells x 9 rows of half blocks
FORMATS = ("PNG", "JPEG", "WEBP")
#: (128, 192) is what a half-block pane asks the engine for; the others are full-size pictures.
PICTURE_SIZES = ((128, 192), (512, 768), (1024, 1536))


def p90(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[int(0.9 * (len(ordered) - 1))]


async def list_figures(results: int) -> tuple[float, list[float], float]:
    """(ms from the first answer to its paint, ms per scrolled key, CPU ms per key)."""
    engine = ScriptedBrowse(count=results)
    app = make_app(engine, Path(tempfile.mkdtemp()), follow_engine=False)  # type: ignore[arg-type]
    displayed: list[float] = []
    display = app._display

    def timed_display(*args: object) -> None:
        display(*args)  # type: ignore[arg-type]
        displayed.append(time.perf_counter())

    app._display = timed_display  # type: ignore[method-assign]
    samples: list[float] = []
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        screen = app.screen
        assert isinstance(screen, BrowseScreen)
        while not engine.answered or not [t for t in displayed if t > engine.answered[0]]:
            await pilot.pause(0.005)
        first = next(t for t in displayed if t > engine.answered[0]) - engine.answered[0]
        table = screen.results
        cpu = time.process_time()
        while table.cursor_row < results - 1:
            row = table.cursor_row
            sent = time.perf_counter()
            await pilot.press("down")
            while table.cursor_row == row or not [t for t in displayed if t > sent]:
                await pilot.pause(0.001)
                if table.cursor_row == row and not screen.loading_more and not screen.next_cursor:
                    break
            samples.append(next(t for t in displayed if t > sent) - sent)
            del displayed[:-1]
        cpu = time.process_time() - cpu
        assert table.row_count == results, table.row_count
    return 1000 * first, [1000 * s for s in samples], 1000 * cpu / len(samples)


def picture_bytes(fmt: str, size: tuple[int, int]) -> bytes:
    image = Image.radial_gradient("L").resize(size).convert("RGB")
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def preview_figures(rounds: int) -> dict[str, float]:
    """Median ms to decode and draw one picture, by format and size."""
    console = Console(file=io.StringIO(), width=200, color_system="truecolor")
    figures: dict[str, float] = {}
    for fmt in FORMATS:
        for size in PICTURE_SIZES:
            data = picture_bytes(fmt, size)
            times = []
            for _ in range(rounds):
                start = time.perf_counter()
                picture = decode(data, PREVIEW_BOX)
                cells = (picture.width, -(-picture.height // 2))
                console.print(HalfcellRenderable(picture, *cells))
                times.append(time.perf_counter() - start)
            figures[f"{fmt} {size[0]}x{size[1]}"] = 1000 * statistics.median(times)
    return figures


def serve_app(results: int) -> None:
    """The app on the scripted catalogue in this terminal, Browse open (``--app``)."""
    engine = ScriptedBrowse(count=results)
    app = make_app(engine, Path(tempfile.mkdtemp()), follow_engine=False)  # type: ignore[arg-type]
    app.call_later(app.switch_mode, "browse")
    app.run()


def terminal_figures(results: int) -> dict[str, float]:
    """Keypress-to-paint in tmux: scrolling every result, and enter to a drawn preview."""
    if shutil.which("tmux") is None:
        raise SystemExit("--terminal needs tmux")
    command = f"{sys.executable} -m bench.bench_browse --app --results {results}"
    tmux(
        "new-session",
        "-d",
        "-s",
        SESSION,
        "-x",
        "120",
        "-y",
        "40",
        f"TERM=xterm-256color {command}",
    )
    try:
        wait_screen(lambda s: "models, more below" in plain(s), timeout=60)
        time.sleep(1.0)  # the first pages and paints settle
        keys = []
        for _ in range(results - 1):
            keys.append(press(["Down"], changed))
        wait_screen(lambda s: f"{results} models" in plain(s), timeout=30)
        preview = press(["Enter"], lambda _before, now: "▀" in plain(now))
    finally:
        tmux("kill-session", "-t", SESSION)
    return {
        "p50": statistics.median(keys),
        "p90": p90(keys),
        "max": max(keys),
        "preview": preview,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10, help="per preview picture")
    parser.add_argument("--terminal", action="store_true", help="also measure in tmux")
    parser.add_argument("--app", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.app:
        serve_app(args.results)
        return
    first, keys, cpu_per_key = asyncio.run(list_figures(args.results))
    print(f"Browse, headless at {SIZE[0]}x{SIZE[1]}, {args.results} results")
    print(f"first results painted {first:.1f} ms after the answer (target <= 300 ms)")
    print(
        f"scrolling {len(keys)} keys: keypress-to-paint p50 {statistics.median(keys):.1f} ms, "
        f"p90 {p90(keys):.1f} ms, max {max(keys):.1f} ms (target p90 <= 100 ms); "
        f"CPU {cpu_per_key:.1f} ms per key (steady on a loaded machine)"
    )
    for name, ms in preview_figures(args.rounds).items():
        print(f"preview {name}: decode + half-block draw {ms:.1f} ms (target <= 150 ms)")
    if args.terminal:
        os.environ.pop("TMUX", None)
        real = terminal_figures(args.results)
        print(
            f"in tmux 120x40: Down keypress-to-paint p50 {real['p50']:.1f} ms, "
            f"p90 {real['p90']:.1f} ms, max {real['max']:.1f} ms (target p90 <= 100 ms); "
            f"enter to a drawn preview {real['preview']:.1f} ms"
        )


if __name__ == "__main__":
    main()
