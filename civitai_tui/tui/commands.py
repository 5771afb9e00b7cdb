"""The command palette: the current screen's key bindings as namespaced commands.

One registry (each screen's ``BINDINGS``) drives the keys, the footer and the
palette; a command runs the same action its key runs, and commands the screen
does not allow right now (``check_action``) are left out.
"""

from __future__ import annotations

from ast import literal_eval
from collections.abc import Iterator
from functools import partial

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.screen import Screen


def _commands(screen: Screen[object]) -> Iterator[tuple[str, Binding]]:
    namespace = type(screen).__name__.removesuffix("Screen").lower()
    seen: set[str] = set()
    for binding in type(screen).BINDINGS:
        if not isinstance(binding, Binding) or binding.action in seen:
            continue
        seen.add(binding.action)
        action, params = (
            binding.action.split("(", 1) if "(" in binding.action else (binding.action, "")
        )
        args = tuple(eval_params(params))
        if screen.check_action(action, args) is not True:
            continue
        yield f"{namespace}: {binding.description}", binding


def eval_params(params: str) -> list[object]:
    """The literal arguments of an action string such as ``job('pause')``."""
    text = params.rstrip(")").strip()
    if not text:
        return []
    value = literal_eval(f"({text},)")
    return list(value)


class ScreenCommands(Provider):
    """Hits for every binding of the screen under the palette."""

    async def discover(self) -> Hits:
        for title, binding in _commands(self.screen):
            yield DiscoveryHit(
                title, partial(self.screen.run_action, binding.action), help=binding.tooltip
            )

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, binding in _commands(self.screen):
            score = matcher.match(title)
            if score > 0:
                yield Hit(
                    score,
                    matcher.highlight(title),
                    partial(self.screen.run_action, binding.action),
                    help=binding.tooltip,
                )
