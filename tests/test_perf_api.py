"""The optimizer through the engine's control API: GET /v1/performance, PUT /v1/performance/mode."""

from __future__ import annotations

import pytest
from test_engine_api import Running, running  # noqa: F401 - the ``running`` fixture

from civitai_tui.errors import CivitaiTuiError, FailureKind


async def test_performance_route_reports_the_optimizer(running: Running) -> None:  # noqa: F811
    report = await running.client.performance()
    assert report["mode"] == "adaptive"
    assert report["limits"]["max_connections"] == 64 and report["limits"]["probe"] is True
    assert set(report) >= {
        "hosts",
        "chunk_size",
        "network_condition",
        "decisions",
        "recommendations",
        "retry_base_delay",
    }


async def test_mode_switch_is_live_persisted_and_validated(running: Running) -> None:  # noqa: F811
    assert await running.client.set_mode("EFFICIENCY") == {"mode": "efficiency"}
    report = await running.client.performance()
    assert report["mode"] == "efficiency" and report["limits"]["max_connections"] == 16
    changes = {d["setting"]: d for d in report["decisions"]}
    assert changes["mode"]["new"] == "efficiency" and changes["mode"]["reason"]
    assert changes["chunk_size"]["new"] == report["limits"]["max_chunk_size"]
    assert report["chunk_size"] == report["limits"]["max_chunk_size"]
    assert 'mode = "efficiency"' in running.engine.config.path.read_text()
    with pytest.raises(CivitaiTuiError) as bad:
        await running.client.set_mode("turbo")
    assert bad.value.kind is FailureKind.BAD_CONFIG and "speed" in bad.value.message
    assert (await running.client.performance())["mode"] == "efficiency"
