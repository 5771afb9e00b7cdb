"""Hooks: a command per file landed and per job finished, with facts in its environment."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import pytest

from civitai_tui.simulator.server import Simulator
from tests.helpers import TOKEN, embedded_engine

RECORDER = """\
import json, os, sys, pathlib
out = pathlib.Path(sys.argv[1])
event = os.environ.get("CIVITAI_TUI_EVENT", "none")
n = len(list(out.glob(event + "-*.json")))
(out / f"{event}-{n}.json").write_text(json.dumps(dict(os.environ)))
"""


async def wait_for(check, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.05)


async def test_hooks_get_the_facts_never_the_token_and_a_failing_hook_is_only_logged(
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("CIVITAI_API_KEY", TOKEN)  # as a user's shell would have it
    monkeypatch.setenv("CIVITAI_TUI_ENGINE_TOKEN", "control-secret")
    script, out = tmp_path / "record.py", tmp_path / "hook-out"
    script.write_text(RECORDER)
    out.mkdir()
    command = f"{sys.executable} {script} {out}"
    config = f"[hooks]\non_file_done = '{command}'\non_job_done = '{command}'\n"
    model = next(m for m in sim.catalogue.models if m.type == "LORA" and not m.mode)
    caplog.set_level(logging.INFO, logger="civitai_tui.engine.hooks")
    async with embedded_engine(sim, tmp_path / "home", config) as (engine, client, _):
        job = await client.add([f"model:{model.id}"], options={"dest": str(tmp_path / "m")})
        assert (await client.wait([job["id"]], timeout=60))["ok"]
        # Each hook is its own process: wait for both records, in whatever order they end.
        await wait_for(
            lambda: (
                len(list(out.glob("job_done-*.json")))
                == len(list(out.glob("file_done-*.json")))
                == 1
            )
        )
        [file_env] = [json.loads(p.read_text()) for p in out.glob("file_done-*.json")]
        [job_env] = [json.loads(p.read_text()) for p in out.glob("job_done-*.json")]
        [landed] = (tmp_path / "m").glob("*.safetensors")
        assert file_env["CIVITAI_TUI_JOB_ID"] == job_env["CIVITAI_TUI_JOB_ID"] == job["id"]
        assert file_env["CIVITAI_TUI_FILE_PATH"] == str(landed)
        assert file_env["CIVITAI_TUI_FILE_BYTES"] == str(landed.stat().st_size)
        assert file_env["CIVITAI_TUI_MODEL_ID"] == str(model.id)
        assert job_env["CIVITAI_TUI_JOB_STATE"] == "COMPLETED"
        assert job_env["CIVITAI_TUI_JOB_PATHS"].splitlines() == [str(landed)]
        for env in (file_env, job_env):
            assert "CIVITAI_API_KEY" not in env and "CIVITAI_TUI_ENGINE_TOKEN" not in env
            assert TOKEN not in json.dumps(env) and "control-secret" not in json.dumps(env)

        # A hook that fails is logged (status and stderr), and the job is unaffected.
        failing = f"{sys.executable} -c \"import sys; sys.stderr.write('boom'); sys.exit(3)\""
        engine.config.set("hooks.on_job_done", failing)
        other = await client.add([f"model:{model.id}"], options={"dest": str(tmp_path / "n")})
        assert (await client.wait([other["id"]], timeout=60))["ok"]
        await wait_for(lambda: "exited 3: boom" in caplog.text)
        assert (await client.job(other["id"]))["state"] == "COMPLETED"
