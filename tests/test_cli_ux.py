"""What a new user meets at the command line: no terminal, prefixes, exit codes, Ctrl-C."""

from __future__ import annotations

from pathlib import Path

import pytest

from civitai_tui.engine.process import EnginePaths
from tests.test_cov_cli import Cli

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("args", [(), ("--embedded",), ("demo",)])
async def test_the_ui_without_a_terminal_says_so_and_exits_2(
    isolated_home: Path, args: tuple[str, ...]
) -> None:
    code, out, err = await Cli(isolated_home)(*args)
    assert code == 2 and out == ""
    assert "civitai-tui needs a terminal: use ssh -t, or a CLI command" in err
    assert "\x1b[?" not in err  # no screen-mode escape codes anywhere
    assert not EnginePaths(isolated_home).socket.exists()  # nothing was started
