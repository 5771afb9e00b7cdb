"""Browse through the engine's control API, against the simulator's gallery on loopback."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image

from civitai_tui.browse.records import BrowseQuery
from civitai_tui.engine.client import EngineClient
from civitai_tui.engine.core import Engine
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.simulator import listing
from civitai_tui.simulator.catalogue import SimFile
from civitai_tui.simulator.server import Simulator, start_simulator
from tests.engine_cli import Cli, engine_home
from tests.helpers import TOKEN, embedded_engine, forward_proxy


@pytest.fixture
async def gallery() -> AsyncIterator[Simulator]:
    sim = await start_simulator(tokens={TOKEN}, gallery=80)
    try:
        yield sim
    finally:
        await sim.close()


@pytest.fixture
async def browse(gallery: Simulator, tmp_path: Path) -> AsyncIterator[tuple[Engine, EngineClient]]:
    async with embedded_engine(gallery, tmp_path / "state", "") as (engine, client, _):
        yield engine, client


def write_file(folder: Path, file: SimFile) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file.name
    path.write_bytes(file.read(0, file.size))
    return path


async def test_search_pages_with_the_cursor_and_filters_hold(
    gallery: Simulator, browse: tuple[Engine, EngineClient]
) -> None:
    _, client = browse
    first = await client.browse_search(BrowseQuery(limit=10))
    assert len(first.items) == 10 and first.next_cursor
    second = await client.browse_search(BrowseQuery(limit=10, cursor=first.next_cursor))
    assert not {m.id for m in first.items} & {m.id for m in second.items}
    shown = {m.id for m in first.items + second.items}
    assert all(not gallery.catalogue.model(i).nsfw for i in shown)  # nsfw off by default
    loras = await client.browse_search(BrowseQuery(types=("lora",), base_models=("Pony",)))
    assert loras.items and all(m.type == "LORA" for m in loras.items)
    for row in loras.items:
        model = gallery.catalogue.model(row.id)
        assert any(v.base_model == "Pony" for v in model.versions)
        assert row.name == model.name and row.creator == model.creator
        assert row.newest_version_date == max(v.published_at for v in model.versions)


async def test_a_repeated_search_is_served_from_the_cache_with_its_age(
    gallery: Simulator, browse: tuple[Engine, EngineClient]
) -> None:
    _, client = browse
    query = BrowseQuery(query="Neon", limit=5)
    fresh = await client.browse_search(query)
    calls = gallery.stats.api_requests
    again = await client.browse_search(query)
    assert gallery.stats.api_requests == calls  # no API call
    assert again.items == fresh.items and again.age_s > 0 and fresh.age_s == 0
    await client.browse_search(query, refresh=True)
    assert gallery.stats.api_requests == calls + 1


async def test_a_bad_filter_is_refused_with_the_allowed_values(
    browse: tuple[Engine, EngineClient],
) -> None:
    _, client = browse
    with pytest.raises(CivitaiTuiError) as caught:
        await client.browse_search(BrowseQuery(sort="Most Hyped"))
    assert caught.value.kind is FailureKind.BAD_TARGET and "Most Downloaded" in caught.value.message


async def test_detail_lists_versions_newest_first_with_files_and_safe_text(
    gallery: Simulator, browse: tuple[Engine, EngineClient]
) -> None:
    _, client = browse
    model = next(m for m in gallery.catalogue.models[-80:] if len(m.versions) >= 3)
    detail = await client.browse_model(model.id)
    assert [v.id for v in detail.versions] == [v.id for v in model.versions]
    dates = [v.published_at for v in detail.versions]
    assert dates == sorted(dates, reverse=True)
    sim_file = model.versions[0].files[0]
    shown = detail.versions[0].files[0]
    assert (shown.id, shown.name, shown.size_bytes, shown.format) == (
        sim_file.id,
        sim_file.name,
        sim_file.size,
        sim_file.format,
    )
    assert shown.primary and shown.pickle_scan == sim_file.pickle_scan
    assert "<" not in detail.description_text.replace("<https://", "")
    assert detail.page_url == f"{gallery.api_url}/models/{model.id}"
    hostile = gallery.catalogue.model(gallery.catalogue.specials.hostile_names.model_id)
    shown_hostile = await client.browse_model(hostile.id)
    assert "\x1b" not in shown_hostile.summary.name and "\x07" not in shown_hostile.summary.name
    assert "<b>Evil</b>" in shown_hostile.summary.name  # text, shown as written


async def test_hostile_gallery_descriptions_arrive_as_bounded_inert_text(
    gallery: Simulator, browse: tuple[Engine, EngineClient]
) -> None:
    _, client = browse
    hostile = [m for m in gallery.catalogue.models if "\x1b" in m.description]
    assert hostile
    detail = await client.browse_model(hostile[0].id)
    assert "\x1b" not in detail.description_text and "alert" not in detail.description_text


async def test_previews_come_at_the_asked_width_and_from_the_cache_after(
    gallery: Simulator, browse: tuple[Engine, EngineClient]
) -> None:
    _, client = browse
    page = await client.browse_search(BrowseQuery(limit=30, sort="Newest"))
    drawn = {m.id for m in gallery.catalogue.models[-80:]}  # the others have tiny PNGs
    previews = [m.preview for m in page.items if m.preview is not None and m.id in drawn]
    formats = set()
    for preview in previews[:6]:
        data = await client.browse_image(preview.url, 64)
        picture = Image.open(io.BytesIO(data))
        formats.add(picture.format)
        assert picture.width == 64
    assert len(formats) >= 2  # the gallery serves PNG, JPEG and WebP
    served = gallery.stats.storage_requests
    await client.browse_image(previews[0].url, 64)
    assert gallery.stats.storage_requests == served


async def test_only_images_named_by_civitai_are_fetched(
    browse: tuple[Engine, EngineClient],
) -> None:
    _, client = browse
    with pytest.raises(CivitaiTuiError) as caught:
        await client.browse_image("http://127.0.0.1:9/internal/secret.png", 64)
    assert caught.value.kind is FailureKind.FORBIDDEN


async def test_library_finds_updates_and_queues_them_beside_the_old_file(
    gallery: Simulator, browse: tuple[Engine, EngineClient], tmp_path: Path
) -> None:
    _, client = browse
    lib = tmp_path / "lib"
    old_model = next(
        m
        for m in gallery.catalogue.models[-80:]
        if len(m.versions) >= 2 and m.versions[0].files[0].format == "SafeTensor"
    )
    current = next(m for m in gallery.catalogue.models[-80:] if len(m.versions) == 1)
    old = write_file(lib / "loras", old_model.versions[1].files[0])
    same = write_file(lib, current.versions[0].files[0])
    stranger = lib / "mine.safetensors"
    stranger.write_bytes(b"not from civitai")
    entries = {Path(e.path): e for e in await client.library([str(lib)])}
    assert set(entries) == {old.resolve(), same.resolve(), stranger.resolve()}
    assert entries[stranger.resolve()].known is False
    flagged = entries[old.resolve()]
    assert flagged.has_update and flagged.version_id == old_model.versions[1].id
    assert flagged.newest_version_id == old_model.versions[0].id
    assert entries[same.resolve()].known and not entries[same.resolve()].has_update
    jobs = await client.queue_updates([old_model.versions[0].id], None)
    assert len(jobs) == 1
    assert (await client.wait(jobs, timeout=60))["ok"]
    placed = (await client.job(jobs[0]))["files"][0]["path"]
    assert Path(placed).parent == old.parent  # beside the old one (flat layout)
    assert old.exists()  # nothing deleted
    with pytest.raises(CivitaiTuiError) as caught:
        await client.queue_updates([current.versions[0].id], None)
    assert caught.value.kind is FailureKind.BAD_TARGET


@pytest.mark.slow
@pytest.mark.timeout(600)  # 2,000 files written and hashed: over 2 min on a loaded 2-core box
async def test_a_2000_file_library_costs_few_paced_calls_then_none(
    tmp_path: Path,
) -> None:
    sim = await start_simulator(tokens={TOKEN}, regular_models=900, file_size=1024)
    try:
        files = [f for f in sim.catalogue.files() if f.size == 1024][:2000]
        assert len(files) == 2000
        lib = tmp_path / "lib"
        for index, file in enumerate(files):
            folder = lib / f"d{index % 20}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{file.id}.safetensors").write_bytes(file.read(0, file.size))
        config = "[api]\nrequests_per_second = 20.0\n"
        async with embedded_engine(sim, tmp_path / "state", config) as (_, client, _):
            before = sim.stats.api_requests
            entries = await client.library([str(lib)])
            first = sim.stats.api_requests - before
            assert len(entries) == 2000 and all(e.known for e in entries)
            assert first <= 2000 / 50 + 2  # by-hash 100 a call, models 100 a call
            log = [t for t, _ in list(sim.stats.api_log)[-first:]]
            for index in range(len(log)):  # never more than the rate (+ burst) in any second
                assert sum(1 for t in log[index:] if t - log[index] < 1.0) <= 20 + 3
            again = await client.library([str(lib)])
            assert sim.stats.api_requests - before == first  # all from the cache
            assert again == entries
    finally:
        await sim.close()
        shutil.rmtree(tmp_path / "lib", ignore_errors=True)


def test_every_simulated_model_lists_its_versions_newest_first(gallery: Simulator) -> None:
    for model in gallery.catalogue.models:
        dates = [v.published_at for v in model.versions]
        assert dates == sorted(dates, reverse=True), model.name


@pytest.mark.slow
async def test_updates_command_lists_the_library_and_queues_updates(
    sim: Simulator, tmp_path: Path, clis: list[Cli]
) -> None:
    cli, _, lib = engine_home(sim, tmp_path, clis, "")
    model = next(m for m in sim.catalogue.ordinary_models() if len(m.versions) >= 2)
    old = write_file(lib, model.versions[-1].files[0])
    _, out, _ = await cli("updates", "--dest", str(lib), "--json")
    (entry,) = json.loads(out)["entries"]
    assert entry["path"] == str(old.resolve()) and entry["has_update"] is True
    assert entry["newest_version_id"] == model.versions[0].id
    _, text, _ = await cli("updates", "--dest", str(lib), "--queue")
    assert "1 files, 1 with a newer version" in text and "queued 1 update job" in text
    (job,) = await cli.jobs()
    assert job["name"] == f"update to version {model.versions[0].id}"
    await cli("wait", job["id"])
    assert old.exists() and len(list(lib.glob("*.safetensors"))) == 2  # beside, nothing deleted


async def test_previews_go_through_the_proxy_over_https_with_the_private_ca(
    tmp_path: Path,
) -> None:
    sim = await start_simulator(tokens={TOKEN}, gallery=20, tls="storage")
    assert sim.ca is not None
    try:
        async with forward_proxy() as proxy:
            config = (
                f'[network]\nproxy = "{proxy.url("socks5h")}"\nca_bundle = "{sim.ca.ca_file}"\n'
            )
            async with embedded_engine(sim, tmp_path / "state", config) as (_, client, _):
                page = await client.browse_search(BrowseQuery(limit=50, sort="Newest"))
                drawn = {m.id for m in sim.catalogue.models[-20:]}
                preview = next(m.preview for m in page.items if m.id in drawn and m.preview)
                assert preview.url.startswith("https://")
                data = await client.browse_image(preview.url, 48)
            carried = await proxy.carried()
        assert Image.open(io.BytesIO(data)).width == 48
        storage = sim.storage_url.removeprefix("https://")
        assert carried.get(f"socks {storage}", 0) >= 1
    finally:
        await sim.close()


@pytest.mark.parametrize("dest", ["relative/models", "/tmp/a\0b"])
async def test_a_library_folder_must_be_an_absolute_path(
    browse: tuple[Engine, EngineClient], dest: str
) -> None:
    _, client = browse
    with pytest.raises(CivitaiTuiError) as caught:
        await client.library([dest])
    assert caught.value.kind is FailureKind.BAD_TARGET and "absolute folder" in caught.value.message


async def test_a_cache_entry_of_another_shape_is_only_a_miss(
    gallery: Simulator, browse: tuple[Engine, EngineClient]
) -> None:
    engine, client = browse
    query = BrowseQuery(limit=3)
    fresh = await client.browse_search(query)
    entries = list((engine.state_dir / "browse-cache" / "api").glob("*.json"))
    assert len(entries) == 1
    data = json.loads(entries[0].read_text())
    data["value"] = {"items": "from an older engine"}
    entries[0].write_text(json.dumps(data))
    calls = gallery.stats.api_requests
    again = await client.browse_search(query)
    assert again.items == fresh.items and gallery.stats.api_requests == calls + 1


async def test_the_library_defaults_to_bulk_dest_which_must_be_absolute(
    gallery: Simulator, browse: tuple[Engine, EngineClient], tmp_path: Path
) -> None:
    _, client = browse
    with pytest.raises(CivitaiTuiError) as caught:
        await client.library()
    assert caught.value.kind is FailureKind.BAD_TARGET and "bulk.dest" in caught.value.message
    await client.set_config("bulk.dest", "models")
    with pytest.raises(CivitaiTuiError) as caught:
        await client.library()
    assert "is relative" in caught.value.message
    model = next(m for m in gallery.catalogue.models[-80:] if m.type == "LORA")
    write_file(tmp_path / "lib", model.versions[0].files[0])
    await client.set_config("bulk.dest", str(tmp_path / "lib"))
    (entry,) = await client.library()
    assert entry.model_id == model.id and entry.version_id == model.versions[0].id


@pytest.mark.parametrize(
    ("limit", "query"),
    [
        (7, BrowseQuery(sort="Newest")),
        (30, BrowseQuery(types=("Checkpoint", "LORA"), nsfw=True, sort="Most Downloaded")),
        (11, BrowseQuery(query="Garden", period="Year")),
    ],
)
async def test_cursors_walk_every_match_once_in_order(
    gallery: Simulator, browse: tuple[Engine, EngineClient], limit: int, query: BrowseQuery
) -> None:
    _, client = browse
    seen: list[int] = []
    cursor = None
    for _ in range(200):
        page = await client.browse_search(replace(query, limit=limit, cursor=cursor))
        seen += [m.id for m in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    wanted = listing.ListingQuery(
        query=query.query or None,
        types=query.types,
        sort=query.sort,
        period=query.period,
        nsfw=query.nsfw,
    )
    expected = [m.id for m in listing.select(gallery.catalogue, wanted, datetime.now(UTC))]
    assert seen == expected and len(seen) > limit


async def test_the_token_never_reaches_the_browse_cache(
    gallery: Simulator, browse: tuple[Engine, EngineClient], tmp_path: Path
) -> None:
    engine, client = browse
    page = await client.browse_search(BrowseQuery(limit=20))
    await client.browse_model(page.items[0].id)
    model = next(m for m in gallery.catalogue.models[-80:] if m.type == "LORA")
    write_file(tmp_path / "lib", model.versions[0].files[0])
    await client.library([str(tmp_path / "lib")])
    cached = list((engine.state_dir / "browse-cache").rglob("*"))
    assert len([p for p in cached if p.is_file()]) >= 4
    for path in cached:
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
