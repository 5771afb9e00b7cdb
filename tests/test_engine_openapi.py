"""The control API fuzzed from its own OpenAPI document against a real engine process.

The engine runs as a subprocess with a TCP listener (token, Host and path-root
checks included), its API origin an unanswering loopback port. Schemathesis
generates valid and invalid requests for every operation; each answer must be
below 500, every 4xx must carry ``{"error", "message"}`` with a message, and the
engine must still answer afterwards with nothing unexpected in its log.
``/v1/shutdown`` (stops the engine), ``/v1/events`` (a WebSocket) and
``/v1/wait`` (a long poll that may wait forever by design) are not fuzzed; they
have their own tests.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings

from civitai_tui.engine.api import OPENAPI
from civitai_tui.engine.remote import new_token

pytestmark = pytest.mark.slow

TOKEN = new_token()
SPEC = json.loads(OPENAPI.read_text())
CONFIG = schemathesis.Config.from_dict({"generation": {"mode": "all"}})
schema = schemathesis.openapi.from_dict(SPEC, config=CONFIG).exclude(
    path=["/v1/shutdown", "/v1/events", "/v1/wait"]
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningEngine:
    def __init__(self, base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.base, self.proc, self.log = base, proc, log

    def get(self, path: str) -> requests.Response:
        return requests.get(self.base + path, headers=auth(), timeout=10)


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEngine]:
    root = tmp_path_factory.mktemp("fuzz")
    port = free_port()
    log = root / "engine.out"
    env = {
        **os.environ,
        "HOME": str(root / "user"),
        "CIVITAI_TUI_HOME": str(root / "state"),
        "CIVITAI_BASE_URL": f"http://127.0.0.1:{free_port()}",  # nobody answers
        "CIVITAI_TUI_ENGINE_TOKEN": TOKEN,
    }
    (root / "user").mkdir()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "civitai_tui", "engine", "--tcp", f"127.0.0.1:{port}"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = RunningEngine(f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, log.read_text()
        try:
            if running.get("/v1/status").status_code == 200:
                break
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, "the engine never answered"
        time.sleep(0.05)
    try:
        yield running
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_the_document_is_served_and_names_every_route(engine: RunningEngine) -> None:
    from civitai_tui.engine.api import make_app

    assert engine.get("/v1/openapi.json").json() == SPEC
    app = make_app(object(), token=None)  # type: ignore[arg-type]
    documented = {(m, p) for p, ops in SPEC["paths"].items() for m in ops}
    served_routes = {
        (r.method.lower(), r.resource.canonical)  # type: ignore[union-attr]
        for r in app.router.routes()
        if r.method != "HEAD"
    }
    assert served_routes == documented


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_fuzzed_requests_get_answers_not_crashes(
    case: schemathesis.Case, engine: RunningEngine
) -> None:
    response = case.call(base_url=engine.base, headers=auth(), timeout=15)
    assert response.status_code < 500, (case.as_curl_command(), response.text)
    if 400 <= response.status_code < 500:
        body = response.json()
        assert isinstance(body.get("message"), str) and body["message"].strip(), response.text
        assert isinstance(body.get("error"), str)
    assert engine.proc.poll() is None, engine.log.read_text()


def test_the_engine_survived_the_fuzzing(engine: RunningEngine) -> None:
    assert engine.get("/v1/status").status_code == 200
    text = engine.log.read_text()
    assert "Traceback" not in text and "unexpected error" not in text, text
