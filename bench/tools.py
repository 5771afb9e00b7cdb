"""The clients under test: how to launch each one, and when it has to be skipped.

Every tool turns (URLs, destination) into one or more command lines that run
in parallel. Adding a client means adding a :class:`Tool` subclass to
:func:`all_tools`; a tool that cannot run here says why in ``skip_reason``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import ssl
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.server import REPO_ROOT


@dataclass(frozen=True)
class Route:
    """How a profile's server is reached: its private CA (HTTPS) and a proxy, if any."""

    ca_file: Path | None = None
    proxy: str | None = None


DIRECT = Route()


class Tool:
    """A download client the harness can time."""

    name = ""
    description = ""

    def skip_reason(self) -> str | None:
        """Why this tool cannot run here, or ``None`` if it can."""
        return None

    def version(self) -> str:
        return ""

    def prepare(self) -> None:
        """One-time set-up before the first timed run."""

    def commands(self, urls: list[str], dest: Path, route: Route = DIRECT) -> list[list[str]]:
        raise NotImplementedError

    def env(self, state_dir: Path, route: Route = DIRECT) -> dict[str, str]:
        """The environment for one run; ``state_dir`` is fresh and private to it.

        The private CA goes in ``SSL_CERT_FILE`` (OpenSSL's default paths: Python and
        we read it) and the proxy in ``https_proxy`` (curl, aria2c and we read it).
        """
        env = dict(os.environ)
        env.pop("CIVITAI_API_KEY", None)  # nothing here needs a token
        for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
            env.pop(name, None)
            env.pop(name.upper(), None)
        if route.ca_file is not None:
            env["SSL_CERT_FILE"] = str(route.ca_file)
        if route.proxy is not None:
            env["https_proxy"] = route.proxy
        return env


def _first_line(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return ""
    return (done.stdout or done.stderr).strip().splitlines()[0] if done.returncode == 0 else ""


class Aria2c(Tool):
    name = "aria2c"
    description = "aria2c -x16 -s16 -k1M -j5, all URLs in one process"

    def skip_reason(self) -> str | None:
        if shutil.which("aria2c") is None:
            return (
                "aria2c is not installed: `sudo apt-get install aria2` (Debian/Ubuntu), "
                "`sudo dnf install aria2` (Fedora) or `brew install aria2` (macOS)"
            )
        return None

    def version(self) -> str:
        return _first_line(["aria2c", "--version"])

    def commands(self, urls: list[str], dest: Path, route: Route = DIRECT) -> list[list[str]]:
        # -Z: each URL is its own download (without it aria2c takes them as mirrors of one file).
        ca = [f"--ca-certificate={route.ca_file}"] if route.ca_file else []
        return [
            [
                "aria2c",
                *ca,
                "-x16",
                "-s16",
                "-k1M",
                "-j5",
                "-Z",
                "--file-allocation=falloc",
                "--allow-overwrite=true",
                "--auto-file-renaming=false",
                "--console-log-level=warn",
                "--summary-interval=0",
                "-d",
                str(dest),
                *urls,
            ]
        ]


class Curl(Tool):
    name = "curl"
    description = "one `curl -s -o` process per file, all in parallel"

    def skip_reason(self) -> str | None:
        if shutil.which("curl") is None:
            return "curl is not installed: `sudo apt-get install curl`"
        return None

    def version(self) -> str:
        return _first_line(["curl", "--version"])

    def commands(self, urls: list[str], dest: Path, route: Route = DIRECT) -> list[list[str]]:
        ca = ["--cacert", str(route.ca_file)] if route.ca_file else []
        return [
            ["curl", "-sS", "--fail", *ca, "-o", str(dest / url.rsplit("/", 1)[-1]), url]
            for url in urls
        ]


class Plain(Tool):
    name = "plain"
    description = "bench/plain.py: aiohttp, one connection per file, iter_any + pwrite"

    def version(self) -> str:
        return f"aiohttp {aiohttp.__version__}"

    def commands(self, urls: list[str], dest: Path, route: Route = DIRECT) -> list[list[str]]:
        return [[sys.executable, "-m", "bench.plain", "--dest", str(dest), *urls]]

    def env(self, state_dir: Path, route: Route = DIRECT) -> dict[str, str]:
        env = super().env(state_dir, route)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        return env


class Floor(Plain):
    """``bench/floor.py``: a minimal HTTPS client, one connection per file (see its doc);
    run from the repository like :class:`Plain`."""

    def __init__(self, engine: str) -> None:
        self.engine = engine
        self.name = f"floor-{engine}"
        self.description = f"bench/floor.py --engine {engine}: one GET per file, TLS body only"

    def skip_reason(self) -> str | None:
        if self.engine == "pycurl" and importlib.util.find_spec("pycurl") is None:
            return "pycurl is not installed (`pip install pycurl`)"
        return None

    def version(self) -> str:
        if self.engine == "pycurl":
            import pycurl

            return str(pycurl.version)
        return ssl.OPENSSL_VERSION

    def commands(self, urls: list[str], dest: Path, route: Route = DIRECT) -> list[list[str]]:
        floor = [sys.executable, "-m", "bench.floor", "--engine", self.engine]
        return [[*floor, "--dest", str(dest), *urls]]


class Ours(Tool):
    """``civitai-tui get URL... --dest DIR --json`` in a subprocess."""

    name = "ours"
    description = "civitai-tui get URL... --dest DIR --json"

    def __init__(self, executable: Path) -> None:
        self.executable = executable

    def skip_reason(self) -> str | None:
        if not self.executable.is_file():
            return f"{self.executable} does not exist (run `make install`)"
        probe = subprocess.run(
            [str(self.executable), "get", "--help"], capture_output=True, timeout=60, check=False
        )
        if probe.returncode != 0:
            return f"`{self.executable.name} get` is not available yet"
        return None

    def version(self) -> str:
        return _first_line([str(self.executable), "--version"])

    def prepare(self) -> None:
        """Byte-compile the package, as a wheel install does: an editable install compiles
        on first import, or on every run where ``PYTHONDONTWRITEBYTECODE`` is set (~0.1 s)."""
        python = self.executable.parent / "python"
        package = REPO_ROOT / "civitai_tui"
        subprocess.run([str(python), "-m", "compileall", "-q", str(package)], check=True)

    def commands(self, urls: list[str], dest: Path, route: Route = DIRECT) -> list[list[str]]:
        return [[str(self.executable), "get", *urls, "--dest", str(dest), "--json"]]

    def env(self, state_dir: Path, route: Route = DIRECT) -> dict[str, str]:
        env = super().env(state_dir, route)
        env["CIVITAI_TUI_HOME"] = str(state_dir)  # no state carried between runs
        return env


FLOORS = ("ssl", "bio", "pycurl")
TOOL_NAMES = (Aria2c.name, Curl.name, Ours.name, Plain.name, *(f"floor-{e}" for e in FLOORS))
#: What runs unless ``--only`` says otherwise (the floor clients answer one question).
DEFAULT_TOOLS = TOOL_NAMES[:4]


def all_tools(ours_executable: Path) -> dict[str, Tool]:
    """Every known tool by name, in :data:`TOOL_NAMES` order."""
    tools: list[Tool] = [Aria2c(), Curl(), Ours(ours_executable), Plain()]
    tools += [Floor(engine) for engine in FLOORS]
    return {tool.name: tool for tool in tools}
