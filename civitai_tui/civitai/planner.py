"""Turning parsed targets into :class:`DownloadRequest`s the downloader can run.

Single targets (model, version, hash, URL) ask the API for their version(s) and
pick files with a :class:`FileSelection`; bulk targets (``user:``, ``tag:``,
``search:``) page through ``/api/v1/models`` with :class:`BulkFilters` and take
the latest version of each model (or all with ``latest_only=False``). The same
file is planned once; two different files that would land on the same name get
the file id appended. Everything goes flat into ``dest``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from civitai_tui.civitai.client import CivitAIClient
from civitai_tui.civitai.filenames import safe_filename
from civitai_tui.civitai.models import Model, ModelFile, ModelVersion
from civitai_tui.civitai.selection import FileSelection, select_files
from civitai_tui.civitai.signed_urls import filename_from_url
from civitai_tui.civitai.targets import (
    FileSpec,
    HashTarget,
    ModelTarget,
    SearchTarget,
    TagTarget,
    Target,
    UrlTarget,
    UserTarget,
    VersionTarget,
    describe_target,
)
from civitai_tui.civitai.urls import check_url
from civitai_tui.download.request import CivitAISourceRef, DirectSource, DownloadRequest
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.events import FileInfo
from civitai_tui.net.policy import current as url_policy

log = logging.getLogger(__name__)

#: Called with a target that could not be planned; planning goes on with the next.
ErrorHandler = Callable[[Target, CivitaiTuiError], None]


@dataclass(frozen=True)
class BulkFilters:
    """``/api/v1/models`` filters for bulk targets (values as the API spells them)."""

    types: tuple[str, ...] = ()
    base_models: tuple[str, ...] = ()
    sort: str | None = None
    period: str | None = None
    nsfw: bool | None = None


def _spec_selection(spec: FileSpec) -> FileSelection:
    return FileSelection(
        primary_only=True,
        formats=(spec.format,) if spec.format else (),
        fp=spec.fp,
        size=spec.size,
        include_types=(spec.type,) if spec.type else (),
    )


def preview_image(version: ModelVersion, max_nsfw_level: int) -> str | None:
    """The URL of the version's first image at or below ``max_nsfw_level`` (1 = PG)."""
    for image in version.images:
        level = image.get("nsfwLevel")
        url = image.get("url")
        if isinstance(url, str) and isinstance(level, int) and level <= max_nsfw_level:
            return url
    return None


def _not_found(message: str) -> CivitaiTuiError:
    return CivitaiTuiError(FailureKind.NOT_FOUND, message)


class _Planner:
    def __init__(
        self,
        client: CivitAIClient,
        dest: Path,
        selection: FileSelection,
        latest_only: bool,
        bulk_limit: int | None,
        filters: BulkFilters,
        preview_nsfw_level: int,
    ) -> None:
        self.client = client
        self.preview_nsfw_level = preview_nsfw_level
        self.dest = dest
        self.selection = selection
        self.latest_only = latest_only
        self.bulk_limit = bulk_limit
        self.filters = filters
        self.requests: list[DownloadRequest] = []
        self._keys: set[str] = set()
        self._names: set[str] = set()
        self._creators: dict[int, str] = {}
        self._host = urlsplit(client.base_url).hostname or ""

    async def add(self, target: Target) -> None:
        match target:
            case ModelTarget():
                await self._add_model_target(target)
            case VersionTarget():
                await self._add_version_target(target)
            case HashTarget(value):
                await self._add_hash(value)
            case UrlTarget(url):
                self._add_url(url)
            case UserTarget(name):
                await self._add_bulk(target, username=name)
            case TagTarget(name):
                await self._add_bulk(target, tag=name)
            case SearchTarget(query):
                await self._add_bulk(target, query=query)

    # -- single targets ----------------------------------------------------------------

    async def _add_model_target(self, target: ModelTarget) -> None:
        model = await self.client.get_model(target.model_id)
        if target.version_id is not None:
            versions = [v for v in model.versions if v.id == target.version_id]
            if not versions:
                raise _not_found(
                    f"model {model.id} ({model.name}) has no published version {target.version_id}"
                )
        else:
            versions = self._pick_versions(model)
        if not versions:
            raise _not_found(f"model {model.id} ({model.name}) has no published versions")
        for version in versions:
            files = self._files_or_raise(version, self.selection)
            self._add_files(version, files, model.creator.username)

    async def _add_version_target(self, target: VersionTarget) -> None:
        version = await self.client.get_version(target.version_id)
        if target.file_id is not None:
            files = [f for f in version.files if f.id == target.file_id]
            if not files:
                raise _not_found(f"model version {version.id} has no file {target.file_id}")
        else:
            selection = _spec_selection(target.file_spec) if target.file_spec else self.selection
            files = self._files_or_raise(version, selection)
        self._add_files(version, files, await self._creator(version.model_id))

    async def _add_hash(self, value: str) -> None:
        version = await self.client.get_version_by_hash(value)
        files = [f for f in version.files if f.has_hash(value)]
        if not files:
            files = self._files_or_raise(version, self.selection)
        self._add_files(version, files[:1], await self._creator(version.model_id))

    def _files_or_raise(self, version: ModelVersion, selection: FileSelection) -> list[ModelFile]:
        if version.model_mode in ("Archived", "TakenDown"):
            raise CivitaiTuiError(
                FailureKind.GONE,
                f"model {version.model_id} ({version.model_name}) is {version.model_mode.lower()} "
                "on CivitAI; its files cannot be downloaded",
            )
        files = select_files(version, selection)
        if not files:
            raise _not_found(
                f"model version {version.id} ({version.model_name} {version.name}) has no file "
                "matching the file selection; relax --format/--fp/--size or use --all-files"
            )
        return files

    async def _creator(self, model_id: int | None) -> str:
        """The creator's user name (the version endpoint lacks it); "" when unknown."""
        if model_id is None:
            return ""
        if model_id not in self._creators:
            try:
                self._creators[model_id] = (await self.client.get_model(model_id)).creator.username
            except CivitaiTuiError as err:
                log.warning("no creator for model %s: %s", model_id, err)
                self._creators[model_id] = ""
        return self._creators[model_id]

    def _add_url(self, url: str) -> None:
        check_url(url, self.client.allow_http)
        url_policy().trust(url)  # the user named this host: it may be on their own network
        key = "url:" + hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
        if key in self._keys:
            return
        self._keys.add(key)
        name = safe_filename(filename_from_url(url) or "", fallback="download")
        info = FileInfo(key=key, name=name, host=urlsplit(url).hostname or "")
        self.requests.append(
            DownloadRequest(info=info, source=DirectSource(url), dest_dir=self.dest)
        )

    # -- bulk targets ------------------------------------------------------------------

    async def _add_bulk(self, target: Target, **query: str) -> None:
        count = 0
        async for model in self.client.iter_models(
            types=self.filters.types,
            base_models=self.filters.base_models,
            sort=self.filters.sort,
            period=self.filters.period,
            nsfw=self.filters.nsfw,
            limit=self.bulk_limit,
            **query,
        ):
            count += 1
            for version in self._pick_versions(model):
                files = select_files(version, self.selection)
                if not files:
                    log.info("skipping %s version %s: no matching file", model.name, version.id)
                self._add_files(version, files, model.creator.username)
        log.info("%s matched %d models", describe_target(target), count)

    def _pick_versions(self, model: Model) -> list[ModelVersion]:
        versions = list(model.versions)
        return versions[:1] if self.latest_only else versions

    # -- requests ----------------------------------------------------------------------

    def _unique_name(self, file: ModelFile, version: ModelVersion) -> str:
        name = safe_filename(
            file.name or f"{version.model_name}_{version.name}", fallback=f"civitai-{file.id}"
        )
        if name in self._names:
            stem, dot, ext = name.rpartition(".")
            name = safe_filename(f"{stem}-{file.id}{dot}{ext}" if dot else f"{name}-{file.id}")
        self._names.add(name)
        return name

    def _add_files(self, version: ModelVersion, files: Iterable[ModelFile], creator: str) -> None:
        for file in files:
            key = f"civitai:{file.id}"
            if key in self._keys:
                continue
            self._keys.add(key)
            self.requests.append(self._request(version, file, creator, key))

    def _request(
        self, version: ModelVersion, file: ModelFile, creator: str, key: str
    ) -> DownloadRequest:
        name = self._unique_name(file, version)
        info = FileInfo(
            key=key,
            name=name,
            size=file.size,
            host=self._host,
            model_id=version.model_id,
            version_id=version.id,
            file_id=file.id,
            model_name=version.model_name,
            version_name=version.name,
            model_type=version.model_type,
            base_model=version.base_model,
            creator=creator,
        )
        return DownloadRequest(
            info=info,
            source=CivitAISourceRef(version.id, file.id),
            dest_dir=self.dest,
            filename=name,
            expected_size=file.size,
            sha256=file.hash("SHA256"),
            blake3=file.hash("BLAKE3"),
            remote_scans=tuple(
                s for s in (file.pickle_scan_result, file.virus_scan_result) if s is not None
            ),
            file_format=file.format,
            preview_url=preview_image(version, self.preview_nsfw_level),
        )


async def plan_downloads(
    client: CivitAIClient,
    targets: Iterable[Target],
    *,
    dest: Path,
    selection: FileSelection | None = None,
    latest_only: bool = True,
    bulk_limit: int | None = None,
    filters: BulkFilters | None = None,
    on_error: ErrorHandler | None = None,
    preview_nsfw_level: int = 1,
) -> list[DownloadRequest]:
    """Requests for every file the targets name, in target order, each file once.

    A target that cannot be planned raises its :class:`CivitaiTuiError`, or, when
    ``on_error`` is given, is reported there while planning goes on.
    """
    planner = _Planner(
        client,
        dest,
        selection or FileSelection(),
        latest_only,
        bulk_limit,
        filters or BulkFilters(),
        preview_nsfw_level,
    )
    for target in targets:
        try:
            await planner.add(target)
        except CivitaiTuiError as err:
            if on_error is None:
                raise
            on_error(target, err)
    return planner.requests


@dataclass(frozen=True)
class PlanOptions:
    """How targets become files: where, which files, which bulk filters."""

    dest: Path
    selection: FileSelection = field(default_factory=FileSelection)
    filters: BulkFilters = field(default_factory=BulkFilters)
    latest_only: bool = True
    limit: int | None = None
    preview_nsfw_level: int = 1


@dataclass(frozen=True)
class PlanFailure:
    """A target that could not be turned into files."""

    target: str
    error: CivitaiTuiError


async def plan_targets(
    client: CivitAIClient, targets: Iterable[Target], options: PlanOptions
) -> tuple[list[DownloadRequest], list[PlanFailure]]:
    """Plan every target; one that fails is reported and the others go on."""
    failures: list[PlanFailure] = []
    requests = await plan_downloads(
        client,
        targets,
        dest=options.dest,
        selection=options.selection,
        latest_only=options.latest_only,
        bulk_limit=options.limit,
        filters=options.filters,
        on_error=lambda t, e: failures.append(PlanFailure(describe_target(t), e)),
        preview_nsfw_level=options.preview_nsfw_level,
    )
    return requests, failures
