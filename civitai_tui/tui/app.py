"""The App: four modes, global keys, themes, keymap, and the buffer-and-timer bridge.

The engine link (:class:`EngineBridge`) fills plain state from async workers;
``flush`` runs ``ui.refresh_hz`` times a second and lets the current screen
paint what changed inside one ``batch_update``. Nothing here downloads or opens
a database: every action is a control-API call through the client.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from textual.app import App
from textual.binding import Binding
from textual.theme import Theme

from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.security.display import markup_safe, printable
from civitai_tui.tui.bridge import EngineAPI, EngineBridge
from civitai_tui.tui.commands import ScreenCommands
from civitai_tui.tui.screens.analytics import AnalyticsScreen
from civitai_tui.tui.screens.base import EngineScreen
from civitai_tui.tui.screens.browse import BrowseScreen
from civitai_tui.tui.screens.jobs import JobsScreen
from civitai_tui.tui.screens.modals import HelpScreen
from civitai_tui.tui.screens.performance import PerformanceScreen
from civitai_tui.tui.settings import UISettings, load_ui_settings
from civitai_tui.tui.state import EngineState
from civitai_tui.tui.terminal import has_terminal
from civitai_tui.tui.themes import DEFAULT_VARIABLES, load_themes

FALLBACK_THEME = "civitai-dark"
TTY_CHECK_SECONDS = 2.0
ENGINE_STOPPED_STATUS = 1


class CivitaiTuiApp(App[None]):
    """The full-screen client of one engine."""

    TITLE = "civitai-tui"
    CSS_PATH = "styles/app.tcss"
    MODES = {
        "jobs": JobsScreen,
        "performance": PerformanceScreen,
        "analytics": AnalyticsScreen,
        "browse": BrowseScreen,
    }
    DEFAULT_MODE = "jobs"
    COMMANDS = App.COMMANDS | {ScreenCommands}
    # The mode keys, help and quit show in every screen's ModeBar, so not in the footer.
    BINDINGS = [
        Binding(
            "1",
            "switch_mode('jobs')",
            "Jobs",
            id="nav.jobs",
            show=False,
            tooltip="The download queue.",
        ),
        Binding(
            "2",
            "switch_mode('performance')",
            "Performance",
            id="nav.performance",
            show=False,
            tooltip="Live graphs and the optimizer.",
        ),
        Binding(
            "3",
            "switch_mode('analytics')",
            "Analytics",
            id="nav.analytics",
            show=False,
            tooltip="Analytics and reports.",
        ),
        Binding(
            "4",
            "switch_mode('browse')",
            "Browse",
            id="nav.browse",
            show=False,
            tooltip="Search CivitAI, look at models, queue them; your library's updates.",
        ),
        Binding(
            "question_mark,f1",
            "help",
            "Help",
            id="app.help",
            show=False,
            tooltip="Every key of this screen.",
        ),
        Binding(
            "ctrl+t",
            "next_theme",
            "Theme",
            id="app.theme",
            show=False,
            tooltip="Switch to the next theme.",
        ),
        Binding(
            "ctrl+q",
            "quit",
            "Quit",
            id="app.quit",
            show=False,
            priority=True,
            tooltip="Leave the UI; the engine keeps downloading.",
        ),
    ]

    def __init__(
        self,
        client: EngineAPI,
        settings: UISettings,
        *,
        clock: Callable[[], float] = time.time,
        follow_engine: bool = True,
    ) -> None:
        super().__init__()
        self.client = client
        self.settings = settings
        self.clock = clock
        self.follow_engine = follow_engine
        self.state = EngineState()
        self.frames = 0  # flushes that painted something (tests and the benchmark read it)
        self.bridge = EngineBridge(client, self.state, on_stopped=self._engine_stopped)
        self.warnings = list(settings.warnings)
        if "TEXTUAL_ANIMATIONS" not in os.environ:
            self.animation_level = "none"
        loaded = load_themes(settings.theme_dirs)
        self.warnings += loaded.errors
        self.our_themes = [t.name for t in loaded.themes]
        for theme in loaded.themes:
            self.register_theme(theme)
        self.theme = self._startup_theme(settings.theme)

    def _startup_theme(self, wanted: str) -> str:
        if wanted in self.available_themes:
            return wanted
        self.warnings.append(f"theme {wanted!r} is not installed; using {FALLBACK_THEME}")
        return FALLBACK_THEME

    def get_css_variables(self) -> dict[str, str]:
        return {**DEFAULT_VARIABLES, **super().get_css_variables()}

    # ------------------------------------------------------------------ lifecycle

    def on_mount(self) -> None:
        self.set_keymap(self.settings.keymap)
        for warning in self.warnings:
            self.notify(warning, severity="warning", timeout=10)
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        if self.follow_engine:
            self.run_worker(self.bridge.follow_events(), group="bridge", name="events")
            self.run_worker(self.bridge.resync(), group="bridge", name="resync")
        self.set_interval(1 / self.settings.refresh_hz, self.flush, name="flush")
        if not self.is_headless:
            self._watch_terminal()

    def _watch_terminal(self) -> None:
        """Exit cleanly when the terminal goes away; the engine keeps downloading."""
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.exit)
        self.set_interval(TTY_CHECK_SECONDS, self._check_tty, name="tty")

    def _check_tty(self) -> None:
        if not has_terminal():
            self.exit()

    def _engine_stopped(self) -> None:
        """The engine stopped under us: leave with status 1 (the CLI says "engine stopped")."""
        self.exit(return_code=ENGINE_STOPPED_STATUS)

    def flush(self) -> None:
        """Paint what changed since the last tick, in one frame.

        The timer can still tick while the app shuts down, its widgets and
        screens going away: nothing is painted once shutdown has begun.
        """
        if not self.is_running:
            return
        self._announce_finished()
        screen = self.screen
        if isinstance(screen, EngineScreen) and self.state.has_changes:
            with self.batch_update():
                screen.sync(self.state)
            self.frames += 1

    def _announce_finished(self) -> None:
        """A toast per job that just ended; with ``ui.notify_done`` the bell or OSC 9 too."""
        mode = self.settings.notify_done
        done, self.state.finished = self.state.finished, []
        if mode == "off":
            return
        for job_id, state in done:
            job = self.state.jobs.get(job_id)
            text = f"{printable(job.name) if job else job_id}: {state.lower()}"
            self.notify(text, severity="information" if state == "COMPLETED" else "warning")
            if mode == "bell":
                self.bell()
            elif mode == "desktop" and self._driver is not None and not self.is_headless:
                self._driver.write(f"\x1b]9;civitai-tui: {text}\x07")  # OSC 9

    # ------------------------------------------------------------------ engine calls

    def engine_call(
        self,
        label: str,
        call: Callable[[EngineAPI], Awaitable[Any]],
        *,
        done: Callable[[Any], None] | None = None,
    ) -> None:
        """Run ``call(client)`` in a worker; errors become a notification, never a traceback."""

        async def run() -> None:
            try:
                result = await call(self.client)
            except CivitaiTuiError as err:
                self.notify(f"{label}: {markup_safe(err.message)}", severity="error", timeout=8)
                return
            self.bridge.resync_now()
            if done is not None:
                done(result)

        self.run_worker(run(), group="engine-call", exit_on_error=False)

    # ------------------------------------------------------------------ global keys

    def key_label(self, binding_id: str) -> str:
        """How the first key of the app binding ``binding_id`` shows, after the keymap."""
        binding = next(b for b in self.BINDINGS if isinstance(b, Binding) and b.id == binding_id)
        key = self.settings.keymap.get(binding_id, binding.key).split(",")[0].strip()
        return self.get_key_display(binding.with_key(key, key_display=None))

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.help_rows()))

    def help_rows(self) -> list[tuple[str, str, str]]:
        """Every key of the current screen and the app, applicable now or not.

        The screen's own keys come first, the app's last. Bindings sharing an id
        (a toggle such as pause/resume) make one row, "Pause / Resume", so a
        remapped toggle is listed once under its new key.
        """
        rows: dict[str, tuple[str, list[str], str]] = {}
        chain = self.screen._modal_binding_chain  # focused widget → … → screen → app
        screen_first = sorted(chain, key=lambda nb: (nb[0] is not self.screen, nb[0] is self))
        for _node, bindings in screen_first:
            for _key, binding in bindings:
                if binding.system:
                    continue
                row_key = binding.id or f"{binding.key}:{binding.action}"
                keys = binding.key_display or self.get_key_display(binding)
                shown_keys, descriptions, binding_id = rows.setdefault(
                    row_key, (keys, [], binding.id or "")
                )
                if keys not in shown_keys.split(" "):
                    shown_keys = f"{shown_keys} {keys}"
                if binding.description and binding.description not in descriptions:
                    descriptions.append(binding.description)
                rows[row_key] = (shown_keys, descriptions, binding_id)
        return [(keys, " / ".join(descs), bid) for keys, descs, bid in rows.values() if descs]

    def action_next_theme(self) -> None:
        names = self.our_themes or [self.theme]
        current = names.index(self.theme) if self.theme in names else -1
        self.theme = names[(current + 1) % len(names)]
        self.notify(f"theme: {self.theme} (ctrl+t: next; kept in ui.theme)", timeout=3)

    def _theme_changed(self, theme: Theme) -> None:
        screen = self.screen
        if isinstance(screen, EngineScreen):
            screen.sync(self.state, full=True)
        if self.follow_engine:
            self.engine_call("save theme", lambda c: c.set_config("ui.theme", theme.name))


def make_app(client: EngineAPI, state_dir: Path, **kwargs: Any) -> CivitaiTuiApp:
    """The app for ``client``, with the settings of ``state_dir`` (CLI, tests, screenshots)."""
    return CivitaiTuiApp(client, load_ui_settings(state_dir), **kwargs)


def engine_keeps_running(state: EngineState) -> str:
    """What to tell the user leaving the UI of a background engine (it does not stop)."""
    active = sum(1 for j in state.jobs.values() if j.state in ("PENDING", "PROCESSING"))
    doing = (
        f"keeps downloading in the background ({active} job(s) running or waiting)"
        if active
        else "keeps running in the background (nothing to download now)"
    )
    return (
        f"The engine {doing}. `civitai-tui` reattaches; `civitai-tui engine stop` stops it "
        "(partial downloads are kept and resume on the next start)."
    )


async def run_tui_async(
    socket_path: Path, state_dir: Path, *, title: str = "civitai-tui"
) -> CivitaiTuiApp:
    """Run the UI until the user quits; returns the app (its last engine state)."""
    from civitai_tui.engine.client import EngineClient

    async with EngineClient(socket_path) as client:
        app = make_app(client, state_dir)
        app.title = title
        await app.run_async()
    if app.return_code == ENGINE_STOPPED_STATUS:
        raise CivitaiTuiError(
            FailureKind.ENGINE,
            "engine stopped (`civitai-tui engine stop` or a signal); "
            "run `civitai-tui` again to start it and reattach",
        )
    return app


def run_tui(socket_path: Path, state_dir: Path, *, title: str = "civitai-tui") -> None:
    """Open the UI on the engine listening at ``socket_path`` (blocks until the user quits)."""
    asyncio.run(run_tui_async(socket_path, state_dir, title=title))
