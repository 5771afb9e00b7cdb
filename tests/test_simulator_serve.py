"""``serve_forever`` (``civitai-tui simulator``) runs in its own process, stops on Ctrl-C."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

SCRIPT = (
    "from civitai_tui.simulator.server import serve_forever;"
    "serve_forever(host='127.0.0.1', api_port=0, storage_port=0, seed=1)"
)


def read_banner(process: subprocess.Popen[str], deadline: float) -> dict[str, str]:
    banner: dict[str, str] = {}
    while "demo token" not in banner:
        assert time.monotonic() < deadline, f"no banner yet: {banner}"
        line = process.stdout.readline()
        assert line, "the simulator exited early"
        match = re.match(r"\s+([A-Za-z ]+):\s+(\S+)", line)
        if match:
            banner[match.group(1)] = match.group(2)
    return banner


@pytest.mark.slow
def test_serve_forever_prints_origins_and_stops_on_ctrl_c():
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        banner = read_banner(process, time.monotonic() + 20)
        assert re.fullmatch(r"[0-9a-f]{32}", banner["demo token"])
        assert banner["storage origin"] != banner["API origin"]
        with urllib.request.urlopen(f"{banner['API origin']}/api/v1/models?limit=1") as response:
            assert len(json.load(response)["items"]) == 1
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
        assert "Traceback" not in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
