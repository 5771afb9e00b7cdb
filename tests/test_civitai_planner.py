"""plan_downloads against the simulator: every target kind becomes the right requests."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from civitai_tui.civitai.client import CivitAIClient
from civitai_tui.civitai.planner import BulkFilters, PlanOptions, plan_downloads, plan_targets
from civitai_tui.civitai.politeness import Backoff, RateLimiter
from civitai_tui.civitai.selection import FileSelection
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
)
from civitai_tui.download.request import CivitAISourceRef, DirectSource, DownloadRequest
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.simulator.catalogue import FileRef, SimFile, SimModel
from civitai_tui.simulator.server import Simulator
from tests.helpers import TOKEN
from tests.test_civitai_client import small_plain_model


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[CivitAIClient]:
    limiter = RateLimiter(rate=1000, burst=100)
    async with CivitAIClient(
        sim.api_url, TOKEN, limiter=limiter, backoff=Backoff(2, 0.01, 0.05)
    ) as c:
        yield c


async def plan(
    client: CivitAIClient, tmp_path: Path, *targets: Target, **kw: object
) -> list[DownloadRequest]:
    return await plan_downloads(client, targets, dest=tmp_path, **kw)  # type: ignore[arg-type]


def special_ids(sim: Simulator) -> set[int]:
    return {r.model_id for r in vars(sim.catalogue.specials).values() if isinstance(r, FileRef)}


def plain_models(sim: Simulator) -> list[SimModel]:
    specials = special_ids(sim)
    return [m for m in sim.catalogue.models if m.id not in specials and m.mode is None]


def latest_primary(model: SimModel) -> SimFile:
    file = model.versions[0].primary_file()
    assert file is not None
    return file


def assert_matches(request: DownloadRequest, sim: Simulator, file: SimFile, dest: Path) -> None:
    version = sim.catalogue.version(file.version_id)
    model = sim.catalogue.model_of_version(version)
    info = request.info
    assert info.key == f"civitai:{file.id}"
    assert (info.model_id, info.version_id, info.file_id) == (model.id, version.id, file.id)
    assert (info.model_name, info.model_type, info.creator) == (
        model.name,
        model.type,
        model.creator,
    )
    assert info.base_model == version.base_model and info.version_name == version.name
    assert request.expected_size == info.size == file.size
    assert request.filename == info.name == file.name
    assert request.dest_dir == dest
    assert request.sha256 == file.sha256.upper() and request.blake3 == file.blake3.upper()
    assert request.remote_scans == (file.pickle_scan, file.virus_scan)
    assert request.file_format == file.format
    assert isinstance(request.source, CivitAISourceRef)
    assert (request.source.version_id, request.source.file_id) == (version.id, file.id)


async def test_model_target_latest_version(
    sim: Simulator, client: CivitAIClient, tmp_path: Path
) -> None:
    model = plain_models(sim)[0]
    [request] = await plan(client, tmp_path, ModelTarget(model.id))
    assert_matches(request, sim, latest_primary(model), tmp_path)


async def test_model_target_all_versions_and_pinned_version(
    sim: Simulator, client: CivitAIClient, tmp_path: Path
) -> None:
    model = next(m for m in plain_models(sim) if len(m.versions) > 1)
    requests = await plan(client, tmp_path, ModelTarget(model.id), latest_only=False)
    assert [r.info.version_id for r in requests] == [v.id for v in model.versions]
    oldest = model.versions[-1]
    [request] = await plan(client, tmp_path, ModelTarget(model.id, oldest.id))
    assert request.info.version_id == oldest.id
    with pytest.raises(CivitaiTuiError) as info:
        await plan(client, tmp_path, ModelTarget(model.id, 2_000_000_000))
    assert info.value.kind is FailureKind.NOT_FOUND and "2000000000" in info.value.message


async def test_version_targets_and_file_choice(
    sim: Simulator, client: CivitAIClient, tmp_path: Path
) -> None:
    ref = sim.catalogue.specials.multi_file
    primary_id, pruned_id, config_id = sim.catalogue.specials.multi_files
    [request] = await plan(client, tmp_path, VersionTarget(ref.version_id))
    assert_matches(request, sim, sim.catalogue.file(primary_id), tmp_path)
    [request] = await plan(client, tmp_path, VersionTarget(ref.version_id, file_id=config_id))
    assert request.info.file_id == config_id
    [request] = await plan(
        client, tmp_path, VersionTarget(ref.version_id), selection=FileSelection(fp="fp16")
    )
    assert request.info.file_id == pruned_id
    pruned = sim.catalogue.file(pruned_id)
    spec = FileSpec(type=pruned.type, format=pruned.format, size=pruned.size_label, fp=pruned.fp)
    [request] = await plan(client, tmp_path, VersionTarget(ref.version_id, file_spec=spec))
    assert request.info.file_id == pruned_id
    everything = await plan(
        client, tmp_path, VersionTarget(ref.version_id), selection=FileSelection(primary_only=False)
    )
    assert [r.info.file_id for r in everything] == [
        f.id for f in sim.catalogue.version(ref.version_id).files
    ]
    with pytest.raises(CivitaiTuiError) as info:
        await plan(client, tmp_path, VersionTarget(ref.version_id, file_id=1))
    assert info.value.kind is FailureKind.NOT_FOUND


async def test_hash_target_picks_the_hashed_file(
    sim: Simulator, client: CivitAIClient, tmp_path: Path
) -> None:
    _, pruned_id, _ = sim.catalogue.specials.multi_files
    pruned = sim.catalogue.file(pruned_id)
    [request] = await plan(client, tmp_path, HashTarget(pruned.sha256.upper()))
    assert_matches(request, sim, pruned, tmp_path)


async def test_url_targets(client: CivitAIClient, tmp_path: Path) -> None:
    url = "https://example.org/files/some%20model.safetensors?token=abcdefsecret"
    [request] = await plan(client, tmp_path, UrlTarget(url), UrlTarget(url))
    assert isinstance(request.source, DirectSource) and request.source.url == url
    assert request.info.key == "url:" + hashlib.sha256(url.encode()).hexdigest()[:16]
    assert request.info.name == "some model.safetensors" and request.info.host == "example.org"
    assert request.filename is None  # the downloader takes Content-Disposition
    with pytest.raises(CivitaiTuiError) as info:
        await plan(client, tmp_path, UrlTarget("http://example.org/x.bin"))
    assert info.value.kind is FailureKind.INSECURE_URL


async def test_user_target_takes_latest_of_each_model(
    sim: Simulator, client: CivitAIClient, tmp_path: Path
) -> None:
    creator = plain_models(sim)[0].creator
    requests = await plan(client, tmp_path, UserTarget(creator), filters=BulkFilters(nsfw=True))
    expected = {
        latest_primary(m).id
        for m in sim.catalogue.models
        if m.creator == creator and m.mode is None and m.versions[0].primary_file()
    }
    assert expected and {r.info.file_id for r in requests} == expected
    for request in requests:
        file = sim.catalogue.file(request.info.file_id)
        assert request.expected_size == file.size and request.info.creator == creator


async def test_tag_and_search_targets_with_filters_and_limit(
    sim: Simulator, client: CivitAIClient, tmp_path: Path
) -> None:
    model = plain_models(sim)[1]
    tag = model.tags[0]
    requests = await plan(
        client, tmp_path, TagTarget(tag), filters=BulkFilters(types=(model.type,), nsfw=True)
    )
    tagged = {
        m.id
        for m in sim.catalogue.models
        if tag in m.tags and m.type == model.type and m.mode is None
    }
    assert {r.info.model_id for r in requests} == tagged
    assert tagged
    word = model.name.split()[0].lower()
    found = await plan(client, tmp_path, SearchTarget(word), filters=BulkFilters(nsfw=True))
    matching = {
        m.id
        for m in sim.catalogue.models
        if m.mode is None and (word in m.name.lower() or any(word in t.lower() for t in m.tags))
    }
    assert {r.info.model_id for r in found} == matching
    limited = await plan(
        client, tmp_path, SearchTarget(word), bulk_limit=1, filters=BulkFilters(nsfw=True)
    )
    assert len(limited) == 1 and limited[0].info.model_id in matching


async def test_duplicates_planned_once(
    sim: Simulator, client: CivitAIClient, tmp_path: Path
) -> None:
    model = plain_models(sim)[0]
    file = latest_primary(model)
    requests = await plan(
        client,
        tmp_path,
        ModelTarget(model.id),
        VersionTarget(file.version_id),
        HashTarget(file.sha256),
        UserTarget(model.creator),
        filters=BulkFilters(nsfw=True),
    )
    keys = [r.info.key for r in requests]
    assert len(keys) == len(set(keys)) and keys[0] == f"civitai:{file.id}"
    assert len({r.filename for r in requests}) == len(requests)


async def test_hostile_names_become_safe(
    sim: Simulator, client: CivitAIClient, tmp_path: Path
) -> None:
    ref = sim.catalogue.specials.hostile_names
    requests = await plan(
        client, tmp_path, VersionTarget(ref.version_id), selection=FileSelection(primary_only=False)
    )
    assert {r.info.file_id for r in requests} == set(sim.catalogue.specials.hostile_files)
    assert len(requests) > 1
    for request in requests:
        name = request.filename
        assert name and "/" not in name and "\\" not in name and ".." not in name
        assert len(name.encode()) <= 200 and name.isprintable()
        assert (tmp_path / name).resolve().parent == tmp_path.resolve()
    assert len({r.filename for r in requests}) == len(requests)


async def test_on_error_reports_and_continues(
    sim: Simulator, client: CivitAIClient, tmp_path: Path
) -> None:
    archived = sim.catalogue.specials.archived
    good = plain_models(sim)[0]
    failures: list[tuple[Target, CivitaiTuiError]] = []
    requests = await plan(
        client,
        tmp_path,
        ModelTarget(archived.model_id),
        ModelTarget(2_000_000_000),
        ModelTarget(good.id),
        on_error=lambda t, e: failures.append((t, e)),
    )
    assert [r.info.model_id for r in requests] == [good.id]
    assert [(t, e.kind) for t, e in failures] == [
        (ModelTarget(archived.model_id), FailureKind.GONE),
        (ModelTarget(2_000_000_000), FailureKind.NOT_FOUND),
    ]


async def test_planned_source_resolves_to_the_bytes(
    sim: Simulator, client: CivitAIClient, tmp_path: Path
) -> None:
    model = plain_models(sim)[0]
    [request] = await plan(client, tmp_path, ModelTarget(model.id))
    resolved = await client.resolve_source(request.source)
    assert TOKEN not in request.source.describe()
    async with aiohttp.ClientSession() as plain, plain.get(resolved.url) as resp:
        body = await resp.read()
    assert len(body) == request.expected_size
    assert hashlib.sha256(body).hexdigest().upper() == request.sha256
    assert sim.stats.storage_auth_headers == []


NO_SUCH_FORMAT = FileSelection(primary_only=False, formats=("Diffusers",))


async def test_a_selection_matching_no_file_names_the_version_and_the_fix(
    sim: Simulator, client: CivitAIClient, tmp_path: Path
) -> None:
    version = small_plain_model(sim).versions[0]
    requests, failures = await plan_targets(
        client, [VersionTarget(version.id)], PlanOptions(dest=tmp_path, selection=NO_SUCH_FORMAT)
    )
    assert requests == []
    [failure] = failures
    assert failure.error.kind is FailureKind.NOT_FOUND
    assert f"model version {version.id}" in failure.error.message
    assert "relax --format" in failure.error.message


async def test_bulk_targets_skip_versions_without_a_matching_file(
    sim: Simulator, client: CivitAIClient, tmp_path: Path
) -> None:
    tag = sim.catalogue.models[0].tags[0]
    options = PlanOptions(dest=tmp_path, selection=NO_SUCH_FORMAT, filters=BulkFilters(), limit=3)
    requests, failures = await plan_targets(client, [TagTarget(tag)], options)
    assert (requests, failures) == ([], [])  # nothing to fetch is not an error
