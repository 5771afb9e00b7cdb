"""User hooks: a command run when a file lands or a job finishes (like aria2's
``--on-download-complete``).

``hooks.on_file_done`` runs once per file in place, ``hooks.on_job_done`` once per
job that ends COMPLETED, FAILED or CANCELLED. The command is split like a shell
line (``shlex``) but run without a shell; what happened is in its environment:

* both: ``CIVITAI_TUI_EVENT`` (``file_done`` / ``job_done``), ``CIVITAI_TUI_JOB_ID``;
* ``file_done``: ``CIVITAI_TUI_FILE_PATH``, ``CIVITAI_TUI_FILE_NAME``,
  ``CIVITAI_TUI_FILE_BYTES``, ``CIVITAI_TUI_FILE_SHA256``, ``CIVITAI_TUI_MODEL_ID``,
  ``CIVITAI_TUI_VERSION_ID``;
* ``job_done``: ``CIVITAI_TUI_JOB_STATE``, ``CIVITAI_TUI_JOB_NAME``,
  ``CIVITAI_TUI_JOB_PATHS`` (the files in place, one a line).

The hook never sees a secret: ``CIVITAI_API_KEY`` and every other ``CIVITAI*``
variable whose name says key, token, secret or password are removed from its
environment. A hook that fails (cannot start, exits non-zero, runs past
``HOOK_TIMEOUT``) is logged with its exit status and the end of its stderr;
downloads never wait for a hook and never fail because of one. Hooks change
live (``config set hooks.on_job_done …``): each event reads the current value.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from civitai_tui.config import Config
from civitai_tui.events import Event, FileCompleted, JobStateChanged
from civitai_tui.security.redact import mask_text

log = logging.getLogger(__name__)

HOOK_TIMEOUT = 300.0
FINISHED = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD", re.IGNORECASE)
STDERR_TAIL = 400


@dataclass(frozen=True)
class JobFacts:
    """What a job-done hook is told about the job."""

    name: str
    paths: tuple[str, ...]


def hook_environment(base: Mapping[str, str], values: Mapping[str, str]) -> dict[str, str]:
    """``base`` without secrets, plus the event's ``values``."""
    env = {k: v for k, v in base.items() if not (k.startswith("CIVITAI") and SECRET_NAME.search(k))}
    return {**env, **values}


class Hooks:
    """A bus callback that starts the configured hook commands."""

    def __init__(self, config: Config, job_facts: Callable[[str], JobFacts | None]) -> None:
        self.config = config
        self.job_facts = job_facts
        self._running: set[asyncio.Task[None]] = set()

    def __call__(self, event: Event) -> None:
        if isinstance(event, FileCompleted):
            info = event.file
            self._start(
                "hooks.on_file_done",
                {
                    "CIVITAI_TUI_EVENT": "file_done",
                    "CIVITAI_TUI_JOB_ID": info.job_id or "",
                    "CIVITAI_TUI_FILE_PATH": event.path,
                    "CIVITAI_TUI_FILE_NAME": info.name,
                    "CIVITAI_TUI_FILE_BYTES": str(event.bytes),
                    "CIVITAI_TUI_FILE_SHA256": event.sha256 or "",
                    "CIVITAI_TUI_MODEL_ID": str(info.model_id or ""),
                    "CIVITAI_TUI_VERSION_ID": str(info.version_id or ""),
                },
            )
        elif isinstance(event, JobStateChanged) and event.new in FINISHED:
            facts = self.job_facts(event.job_id) or JobFacts("", ())
            self._start(
                "hooks.on_job_done",
                {
                    "CIVITAI_TUI_EVENT": "job_done",
                    "CIVITAI_TUI_JOB_ID": event.job_id,
                    "CIVITAI_TUI_JOB_STATE": event.new,
                    "CIVITAI_TUI_JOB_NAME": facts.name,
                    "CIVITAI_TUI_JOB_PATHS": "\n".join(facts.paths),
                },
            )

    def _start(self, key: str, values: dict[str, str]) -> None:
        command = self.config.get(key)
        if not command:
            return
        task = asyncio.get_running_loop().create_task(self._run(key, command, values))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, key: str, command: str, values: dict[str, str]) -> None:
        env = hook_environment(os.environ, values)
        try:
            proc = await asyncio.create_subprocess_exec(
                *shlex.split(command),
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        except (OSError, ValueError) as exc:
            log.warning("%s could not start %r: %s", key, command, exc)
            return
        try:
            _, err = await asyncio.wait_for(proc.communicate(), HOOK_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            log.warning("%s %r ran past %.0f s and was stopped", key, command, HOOK_TIMEOUT)
            return
        if proc.returncode:
            tail = mask_text(err.decode(errors="replace").strip()[-STDERR_TAIL:])
            log.warning("%s %r exited %d: %s", key, command, proc.returncode, tail or "(no output)")
        else:
            log.info("%s ran for %s", key, values.get("CIVITAI_TUI_JOB_ID") or "get")

    async def close(self, grace: float = 5.0) -> None:
        """Give running hooks ``grace`` seconds; slower ones are left to run on their own."""
        if self._running:
            _, late = await asyncio.wait(set(self._running), timeout=grace)
            if late:
                log.info("%d hook(s) still running at shutdown; not waiting for them", len(late))
