"""A time-series graph (plotext) whose line colours come from the theme's variables.

x is "seconds ago" (numbers, not dates: plotext's date helpers differ between
versions); the owner calls :meth:`plot` at most once or twice a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from textual.color import Color, ColorParseError
from textual_plotext import PlotextPlot

from civitai_tui.tui.themes import DEFAULT_VARIABLES


@dataclass(frozen=True)
class Series:
    """One line: its label, its y values (oldest first) and its ``$graph-*`` variable."""

    label: str
    values: Sequence[float]
    variable: str


class TimeGraph(PlotextPlot):
    """Lines over the last minutes, with a fixed title and y unit."""

    DEFAULT_CSS = """
    TimeGraph { height: 1fr; min-height: 6; }
    """

    def __init__(self, title: str, unit: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.title = title
        self.unit = unit

    def _rgb(self, variable: str) -> tuple[int, int, int]:
        raw = self.app.theme_variables.get(variable) or DEFAULT_VARIABLES[variable]
        try:
            return Color.parse(raw).rgb
        except ColorParseError:
            return Color.parse(DEFAULT_VARIABLES[variable]).rgb

    def plot(self, xs: Sequence[float], series: Sequence[Series]) -> None:
        """Redraw with ``xs`` (seconds ago, <= 0) and one line per series."""
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(self.title)
        plt.ylabel(self.unit)
        if not xs:
            plt.title(f"{self.title}: no data yet")
        for line in series:
            if xs:
                plt.plot(
                    list(xs), list(line.values), label=line.label, color=self._rgb(line.variable)
                )
        self.refresh()
