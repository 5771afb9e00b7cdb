"""The add dialog's preview says where the files go and what the disk keeps free."""

from __future__ import annotations

import shutil
from pathlib import Path

from civitai_tui.simulator.server import Simulator
from civitai_tui.tui.screens.add_job import describe_preview
from tests.helpers import embedded_engine

GIB = 1024**3


def test_the_preview_line_says_the_free_space_after() -> None:
    base = {"files": 2, "total_bytes": 3 * GIB, "already_present": 0, "download_bytes": 3 * GIB}
    assert "; 7.0 GiB free after (10.0 GiB now)" in describe_preview(
        {**base, "free_bytes": 10 * GIB}
    )
    tight = describe_preview({**base, "free_bytes": 1 * GIB})
    assert "not enough space" in tight and "1.0 GiB free" in tight
    assert "free" not in describe_preview(base)  # an engine that does not say


async def test_the_engine_preview_reports_the_destination_disk(
    sim: Simulator, tmp_path: Path
) -> None:
    model = next(m for m in sim.catalogue.models if m.type == "LORA" and not m.mode)
    dest = tmp_path / "not-yet" / "made"  # measured on its nearest existing folder
    async with embedded_engine(sim, tmp_path / "home", "") as (_engine, client, _):
        preview = await client.preview([f"model:{model.id}"], {"dest": str(dest)})
    free = shutil.disk_usage(tmp_path).free
    assert abs(preview["free_bytes"] - free) < 64 * 1024**2
    assert preview["files"] == 1 and not dest.exists()
