"""Planner edges: a file selection that matches nothing, and bulk targets that skip versions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from civitai_tui.civitai.client import CivitAIClient
from civitai_tui.civitai.planner import BulkFilters, PlanOptions, plan_targets
from civitai_tui.civitai.selection import FileSelection
from civitai_tui.civitai.targets import TagTarget, VersionTarget
from civitai_tui.errors import FailureKind
from civitai_tui.simulator.server import Simulator
from tests.test_civitai_client import make_client, small_plain_model


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[CivitAIClient]:
    async with make_client(sim.api_url) as c:
        yield c


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
