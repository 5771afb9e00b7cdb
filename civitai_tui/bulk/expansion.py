"""Expansion: a job's targets become files placed by the library's rules.

:class:`JobExpander` owns what the queue works out before and around a
download, never when it happens: the plan (``civitai/planner.py``), each file's
place by the library layout, and the library index (``bulk/library.py``): a
file already at its path is done, one whose verified content is elsewhere is
placed from there (``bulk.dedupe``), and a file in place is indexed and gets
its sidecars. The manager decides when (scheduling) and saves what changed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

from civitai_tui.bulk.jobs import BulkDownloadJob, FileState, JobFile, JobOptions
from civitai_tui.bulk.library import LibraryIndex, Placements
from civitai_tui.bulk.placement import add_companions, place
from civitai_tui.civitai.client import CivitAIClient
from civitai_tui.civitai.layouts import LibraryLayout
from civitai_tui.civitai.planner import plan_targets
from civitai_tui.civitai.targets import (
    SearchTarget,
    TagTarget,
    Target,
    UserTarget,
    describe_target,
    parse_target,
)
from civitai_tui.download.dedupe import place_copy
from civitai_tui.download.disk import free_bytes
from civitai_tui.download.request import DownloadRequest
from civitai_tui.download.settings import DownloadResult
from civitai_tui.errors import CivitaiTuiError
from civitai_tui.security.redact import mask_text

if TYPE_CHECKING:  # the manager builds the expander with its own (live) settings
    from civitai_tui.bulk.manager import ManagerSettings

log = logging.getLogger(__name__)


class JobExpander:
    """Plans jobs into placed files and keeps the library index (one per engine run)."""

    def __init__(
        self,
        settings: ManagerSettings,
        client: CivitAIClient,
        session: aiohttp.ClientSession | None,
        placements: Placements | None = None,
    ) -> None:
        self.settings = settings
        self._client = client
        self._session = session
        self._library = LibraryIndex(settings.state_dir / "state.db")
        #: Fleet mode: what the other engines placed (``civitai_tui.fleet.placements``).
        self._placements = placements
        self._scanned: set[Path] = set()

    def close(self) -> None:
        self._library.close()

    async def expand(self, job: BulkDownloadJob) -> None:
        """Give ``job`` its files, its model's name and the targets' errors (not saved)."""
        requests, errors = await self._plan(job.targets, job.options)
        job.files.extend(self._job_files(job, requests))
        job.name = model_name(job, requests, self.settings.base_url)
        job.expanded = True
        job.error = "; ".join(errors) or None

    async def preview(self, targets: Sequence[str], options: JobOptions) -> dict[str, object]:
        """What a job for ``targets`` would download, without queueing it."""
        requests, errors = await self._plan(targets, options)
        files = self._job_files(
            BulkDownloadJob(name="preview", targets=(), options=options), requests
        )
        present = [f for f in files if f.state is FileState.SKIPPED]
        copies = [f for f in files if f.origin is not None]
        return {
            "files": len(files),
            "total_bytes": sum(f.size or 0 for f in files),
            "free_bytes": free_bytes(Path(options.dest or ".")),
            "already_present": len(present),
            "from_library": len(copies),
            "download_bytes": sum(
                f.size or 0 for f in files if f not in present and f not in copies
            ),
            "errors": errors,
            "items": [
                {
                    "name": f.request.filename or f.info.name,
                    "size": f.size,
                    "model": f.info.model_name,
                    "type": f.info.model_type,
                    "base_model": f.info.base_model,
                    "present": f in present,
                    "copy_from": f.origin,
                }
                for f in files[:100]
            ],
        }

    def copy_elsewhere(self, f: JobFile) -> str | None:
        """A verified copy of ``f`` in the library to place at its path (``bulk.dedupe``)."""
        sha256, final = f.request.sha256, f.final
        if not (sha256 and final) or self.settings.dedupe == "download":
            return None
        found = self._library.find(sha256, exclude=final)
        return str(found) if found is not None else None

    async def copy_in_fleet(self, f: JobFile) -> str | None:
        """A verified copy another engine of the fleet placed on shared storage."""
        sha256, final = f.request.sha256, f.final
        if self._placements is None or not (sha256 and final) or self.settings.dedupe == "download":
            return None
        found = await self._placements.find(sha256, exclude=final)
        return str(found) if found is not None else None

    async def place(self, f: JobFile) -> DownloadResult | None:
        """Put the library's copy of ``f`` at its asked path; None: download it instead."""
        sha256, final = f.request.sha256, f.final
        assert f.origin is not None and sha256 and final is not None
        if self.settings.dedupe == "download":
            f.origin = None
            return None
        try:
            f.method = await asyncio.to_thread(
                place_copy, Path(f.origin), final, sha256, self.settings.dedupe
            )
            size = final.stat().st_size
        except OSError as exc:  # the copy vanished (an unmounted disk) or changed
            log.warning("%s: cannot use %s (%s); downloading it instead", final, f.origin, exc)
            f.origin = None
            return None
        log.info("%s: %s of %s", final, f.method, f.origin)
        return DownloadResult("skipped", final, bytes=size, sha256=sha256.upper(), verified=True)

    async def in_place(self, f: JobFile, path: Path, sha256: str | None) -> None:
        """A file is in place: index it and write its sidecars (a failure: ``f.warning``)."""
        if sha256:
            try:
                await asyncio.to_thread(self._library.add, path, sha256)
            except (OSError, sqlite3.Error) as exc:  # only the index misses it
                log.warning("library index: cannot record %s: %s", path, exc)
            if self._placements is not None:
                await self._placements.add(path, sha256)
        f.warning = await add_companions(
            self._session,
            path,
            f.info,
            sha256,
            f.request.preview_url,
            sidecars=self.settings.sidecars,
            previews=self.settings.previews,
            base_url=self.settings.base_url,
            allow_http=self.settings.allow_http,
        )

    async def _plan(
        self, targets: Sequence[str], opts: JobOptions
    ) -> tuple[list[DownloadRequest], list[str]]:
        """Plan ``targets``; errors are collected per target, never raised."""
        errors: list[str] = []
        try:
            requests, failures = await plan_targets(
                self._client,
                [parse_target(t, self.settings.base_url) for t in targets],
                opts.plan_options(self.settings.preview_nsfw_level),
            )
            errors = [f"{f.target}: {f.error.message}" for f in failures]
            await self._scan_library(Path(opts.dest or "."))
        except CivitaiTuiError as err:
            errors.append(err.message)
            requests = []
        except Exception as exc:  # never lose the job to a surprise
            log.exception("planning failed")
            errors.append(mask_text(f"unexpected error: {exc}"))
            requests = []
        return requests, errors

    async def _scan_library(self, root: Path) -> None:
        """Index the destination's model files once per engine run (then kept current)."""
        root = root.expanduser().resolve()
        if root in self._scanned or not root.is_dir():
            return
        result = await asyncio.to_thread(self._library.scan, root)
        self._scanned.add(root)
        log.info("library %s: %d model files, %d hashed", root, result.files, result.hashed)

    def _job_files(self, job: BulkDownloadJob, requests: list[DownloadRequest]) -> list[JobFile]:
        """Place each planned file in the library; mark the ones already at their path and
        note, for the others, a verified copy elsewhere to link or copy from."""
        layout = LibraryLayout(
            Path(job.options.dest or "."), self.settings.layout, self.settings.template
        )
        files = []
        for req in requests:
            info = dataclasses.replace(req.info, key=f"{job.id}:{req.info.key}", job_id=job.id)
            f = JobFile(place(layout, dataclasses.replace(req, info=info)))
            sha256, final = f.request.sha256, f.final
            if sha256 and final is not None and self._library.holds(final, sha256):
                f.state, f.done, f.path, f.method = (
                    FileState.SKIPPED,
                    f.size or 0,
                    str(final),
                    "present",
                )
            else:
                f.origin = self.copy_elsewhere(f)
            files.append(f)
        return files


def default_name(targets: Sequence[Target]) -> str:
    """A job's name when the user gave none: its first targets (``model:5575``)."""
    return ", ".join(describe_target(t) for t in targets[:3])


def model_name(job: BulkDownloadJob, requests: Sequence[DownloadRequest], base_url: str) -> str:
    """The job's name once planned: the model's own name when the job had a default name
    and its one model-like target (``model:``, ``version:``, ``hash:``, a URL) found one
    model; a name the user gave, or a bulk target's, stays."""
    parsed = [parse_target(t, base_url) for t in job.targets]
    models = {r.info.model_name for r in requests if r.info.model_name}
    bulk = isinstance(parsed[0], UserTarget | TagTarget | SearchTarget) if parsed else True
    if len(parsed) != 1 or bulk or len(models) != 1 or job.name != default_name(parsed):
        return job.name
    return models.pop()
