"""The generated catalogue: deterministic, realistic, with every special case tests need."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from picklescan.scanner import scan_file_path

from civitai_tui.simulator.catalogue import Catalogue, FileRef
from civitai_tui.simulator.content import AUTOV1_LENGTH, AUTOV1_OFFSET
from civitai_tui.simulator.generate import BASE_MODELS, MODEL_TYPES, build_catalogue
from civitai_tui.simulator.listing import ListingQuery, select


def shape(catalogue: Catalogue) -> list[tuple[int, str, int, str]]:
    return [(f.id, f.name, f.size, f.read(0, 64).hex()) for f in catalogue.files()]


def test_deterministic_per_seed_and_cheap_to_build():
    started = time.monotonic()
    first = build_catalogue(12345)
    assert time.monotonic() - started < 1.0
    assert shape(first) == shape(build_catalogue(12345))
    assert shape(first) != shape(build_catalogue(54321))
    huge = first.file(first.specials.huge.file_id)
    assert not huge.hashes_ready()  # hashes are computed on first need, not at start


def test_realistic_variety():
    catalogue = build_catalogue(1)
    assert len(catalogue.models) == 40
    assert {m.type for m in catalogue.models} == set(MODEL_TYPES)
    assert {v.base_model for m in catalogue.models for v in m.versions} == set(BASE_MODELS)
    assert len({m.creator for m in catalogue.models}) == 8
    assert any(m.nsfw for m in catalogue.models)
    for model in catalogue.models:
        assert 1 <= len(model.versions) <= 4
        for version in model.versions:
            assert 1 <= len(version.files) <= 4 and version.primary_file() is not None
            for file in version.files:
                assert file.size_kb * 1024 == file.size
                assert catalogue.version_of_file(file) is version


def test_specials_point_at_real_files():
    catalogue = build_catalogue(1)
    for field in dataclasses.fields(catalogue.specials):
        value = getattr(catalogue.specials, field.name)
        refs = [value] if isinstance(value, FileRef) else []
        for ref in refs:
            file = catalogue.file(ref.file_id)
            assert file is not None and file.version_id == ref.version_id, field.name
            assert catalogue.version(ref.version_id).model_id == ref.model_id, field.name
    specials = catalogue.specials
    assert catalogue.file(specials.large.file_id).size == 128 << 20
    assert catalogue.file(specials.huge.file_id).size == 512 << 20
    assert catalogue.model(specials.archived.model_id).mode == "Archived"
    assert catalogue.version(specials.early_access.version_id).early_access_ends_at is not None
    assert not catalogue.file(specials.unicode_name.file_id).name.isascii()
    multi = [catalogue.file(i) for i in specials.multi_files]
    assert [(f.primary, f.type) for f in multi] == [
        (True, "Model"),
        (False, "Pruned Model"),
        (False, "Config"),
    ]


def scan(tmp_path: Path, catalogue: Catalogue, file_id: int) -> list[tuple[str, str]]:
    file = catalogue.file(file_id)
    path = tmp_path / file.name
    path.write_bytes(file.read(0, file.size))
    assert zipfile.ZipFile(io.BytesIO(path.read_bytes())).read("archive/version") == b"3\n"
    return [(g.module, g.name) for g in scan_file_path(str(path)).globals]


def test_checkpoints_are_zip_pickles_and_the_malicious_one_is_caught(tmp_path: Path):
    catalogue = build_catalogue(1)
    specials = catalogue.specials
    assert scan(tmp_path, catalogue, specials.malicious_ckpt.file_id) == [("posix", "system")]
    assert scan(tmp_path, catalogue, specials.danger_flagged.file_id) == [("posix", "system")]
    assert scan(tmp_path, catalogue, specials.clean_ckpt.file_id) == [
        ("collections", "OrderedDict")
    ]
    assert catalogue.file(specials.malicious_ckpt.file_id).pickle_scan == "Success"


def test_autov1_follows_its_definition():
    catalogue = build_catalogue(1)
    large = catalogue.file(catalogue.specials.large.file_id)
    window = large.read(AUTOV1_OFFSET, AUTOV1_OFFSET + AUTOV1_LENGTH)
    assert large.api_hashes()["AutoV1"] == hashlib.sha256(window).hexdigest()[:8].upper()
    small = min(catalogue.files(), key=lambda f: f.size)
    assert small.size < 2 * AUTOV1_OFFSET and "AutoV1" not in small.api_hashes()


@pytest.mark.parametrize("clock", ["00:01", "12:00", "23:59"])
def test_every_period_has_models_at_any_time_of_day(clock: str) -> None:
    hour, minute = map(int, clock.split(":"))
    now = datetime(2026, 11, 28, hour, minute, 30, tzinfo=UTC)
    catalogue = build_catalogue(1, today=now)
    counts = [
        len(select(catalogue, ListingQuery(period=period, nsfw=True), now))
        for period in ("Day", "Week", "Month", "Year", "AllTime")
    ]
    assert 0 < counts[0] < counts[1] < counts[2] < counts[3] < counts[4]
