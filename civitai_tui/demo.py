"""``civitai-tui demo``: the whole download path on the built-in simulator, offline.

It starts the simulator on loopback with a throwaway token, points the client at
it, and downloads a sample of its catalogue: models of several types, the
128 MiB checkpoint (segmented, verified) and one malicious pickle that the
local scan must refuse and quarantine. Nothing reaches the internet.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

from rich.console import Console

from civitai_tui.civitai.targets import ModelTarget, Target
from civitai_tui.config import Config
from civitai_tui.console import ProgressDisplay, SummaryRow, print_summary
from civitai_tui.events import EventBus
from civitai_tui.oneshot import GetOptions, GetReport, run_get
from civitai_tui.runtime_settings import download_settings
from civitai_tui.simulator.catalogue import Catalogue
from civitai_tui.simulator.server import start_simulator

SAMPLE_SIZE = 6


def sample_targets(catalogue: Catalogue) -> tuple[list[Target], int]:
    """A few models of distinct types, the large checkpoint, and the malicious pickle."""
    specials = catalogue.specials
    special_models = {
        getattr(specials, name).model_id
        for name in specials.__dataclass_fields__
        if hasattr(getattr(specials, name), "model_id")
    }
    seen_types: set[str] = set()
    picks: list[Target] = []
    for model in catalogue.models:
        if model.id in special_models or model.mode or model.type in seen_types:
            continue
        seen_types.add(model.type)
        picks.append(ModelTarget(model.id))
        if len(picks) == SAMPLE_SIZE:
            break
    picks.append(ModelTarget(specials.large.model_id))
    picks.append(ModelTarget(specials.malicious_ckpt.model_id))
    return picks, specials.malicious_ckpt.file_id


async def _demo(dest: Path, console: Console) -> tuple[GetReport, int]:
    token = secrets.token_hex(16)
    sim = await start_simulator(tokens={token})
    try:
        targets, malicious = sample_targets(sim.catalogue)
        console.print(
            f"[bold]civitai-tui demo[/]: simulator at {sim.api_url}, "
            f"downloading {len(targets)} models into {dest}"
        )
        bus = EventBus()
        display = ProgressDisplay(console)

        def planned(requests: list[object]) -> None:
            display.start(len(requests))
            bus.add_callback(display)

        try:
            report = await run_get(
                targets,
                GetOptions(dest=dest, allow_http=False),
                base_url=sim.api_url,
                api_key=token,
                settings=download_settings(Config.load()),
                bus=bus,
                on_planned=planned,
            )
        finally:
            display.stop()
    finally:
        await sim.close()
    return report, malicious


def run_demo(dest: Path, console: Console) -> int:
    """Run the demo; 0 when every file but the planted malicious one completed."""
    dest.mkdir(parents=True, exist_ok=True)
    report, malicious = asyncio.run(_demo(dest, console))
    rows = []
    ok = not report.plan_failures
    for req, res in report.results:
        expected_refusal = req.info.file_id == malicious
        detail = res.error.message if res.error else str(res.path)
        if expected_refusal:
            detail = f"refused as planned: {detail}"
            ok = ok and res.status == "failed"
        else:
            ok = ok and res.status != "failed"
        rows.append(SummaryRow(req.filename or req.info.name, res.status, res.bytes, detail))
    print_summary(console, rows)
    console.print(f"Models are in {dest}; refused files are in the quarantine folder.")
    return 0 if ok else 1
