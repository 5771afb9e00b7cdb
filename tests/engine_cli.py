"""The CLI as a subprocess against a real engine: the helpers engine tests share."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from civitai_tui.simulator.server import Simulator
from tests.helpers import TOKEN


class Cli:
    """Runs ``civitai-tui`` as a subprocess without blocking the simulator's event loop."""

    def __init__(self, home: Path, sim: Simulator) -> None:
        self.home = home
        self.env = sim.client_env(home, TOKEN)

    async def __call__(
        self, *args: str, check: bool = True, stdin: bytes | None = None
    ) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "civitai_tui",
            *args,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(stdin), 120)
        code = proc.returncode
        assert code is not None
        if check and code != 0:
            raise AssertionError(f"civitai-tui {' '.join(args)} -> {code}\n{err.decode()}")
        return code, out.decode(), err.decode()

    async def jobs(self) -> list[dict[str, Any]]:
        return json.loads((await self("ls", "--json"))[1])

    def engine_pid(self) -> int:
        return int((self.home / "engine.lock").read_text().strip())


def engine_home(
    sim: Simulator, tmp_path: Path, clis: list[Cli], config: str
) -> tuple[Cli, Path, Path]:
    """A state dir ``home`` with ``config`` as its config.toml, a CLI on it (its engine
    stopped at teardown by the ``clis`` fixture) and a library path ``lib``."""
    home, lib = tmp_path / "home", tmp_path / "lib"
    home.mkdir()
    (home / "config.toml").write_text(config)
    cli = Cli(home, sim)
    clis.append(cli)
    return cli, home, lib


async def until(check: Any, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "deadline passed"
        await asyncio.sleep(0.05)


def kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie (our own child? no: the engine runs in its own session) still counts as gone
    return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
