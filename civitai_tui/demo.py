"""``civitai-tui demo``: the product on the built-in simulator, offline.

It starts the simulator on loopback with a throwaway token and points the
client at it. By default an engine runs inside the UI process on a fresh demo
state dir (``<state dir>/demo``, wiped at each start) with a sample queue:
models of several types, a creator's catalogue, the 128 MiB and 512 MiB
checkpoints (rate-capped: the queue lasts a few minutes, so progress, pause and
resume can be watched), one malicious pickle that the local scan must refuse and
quarantine (in the demo's state dir), and an archived model whose job fails; the UI's
simulator also serves a gallery of browsable models with drawn previews (Browse, mode 4).
``--no-tui`` downloads the sample with progress bars instead. Nothing reaches the internet.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
from pathlib import Path

from rich.console import Console

from civitai_tui.bulk.jobs import JobOptions
from civitai_tui.civitai.planner import PlanOptions
from civitai_tui.civitai.targets import ModelTarget, Target, describe_target
from civitai_tui.config import Config, Environment
from civitai_tui.console import ProgressDisplay, SummaryRow, print_summary
from civitai_tui.events import EventBus
from civitai_tui.net.network import Network, install
from civitai_tui.oneshot import GetOptions, GetReport, run_get
from civitai_tui.runtime_settings import download_settings
from civitai_tui.security.quarantine import quarantine_dir
from civitai_tui.simulator.catalogue import Catalogue
from civitai_tui.simulator.gallery import GALLERY_MODELS
from civitai_tui.simulator.server import start_simulator

SAMPLE_SIZE = 6


#: The demo's storage rate for its big files (bytes/s): minutes, not seconds.
DEMO_RATE = 2_000_000


def sample_targets(catalogue: Catalogue) -> tuple[list[Target], int]:
    """A few models of distinct types, the large checkpoint, and the malicious pickle."""
    specials = catalogue.specials
    seen_types: set[str] = set()
    picks: list[Target] = []
    for model in catalogue.ordinary_models():
        if model.type in seen_types:
            continue
        seen_types.add(model.type)
        picks.append(ModelTarget(model.id))
        if len(picks) == SAMPLE_SIZE:
            break
    picks.append(ModelTarget(specials.large.model_id))
    picks.append(ModelTarget(specials.malicious_ckpt.model_id))
    return picks, specials.malicious_ckpt.file_id


async def _demo(dest: Path, home: Path, console: Console) -> tuple[GetReport, int]:
    token = secrets.token_hex(16)
    sim = await start_simulator(tokens={token}, tls="storage")
    assert sim.ca is not None
    # Files come over HTTPS signed by the simulator's CA, trusted as a private CA is;
    # the local simulator is reached directly whatever proxy the environment sets.
    install(Network(ca_bundle=sim.ca.ca_file))
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
                GetOptions(PlanOptions(dest=dest)),
                base_url=sim.api_url,
                api_key=token,
                settings=download_settings(Config.load(home / "config.toml")),
                bus=bus,
                on_planned=planned,
            )
        finally:
            display.stop()
    finally:
        await sim.close()
    return report, malicious


def run_demo(dest: Path, home: Path, console: Console) -> int:
    """Run the demo in state dir ``home``; 0 when every file but the planted malicious
    one completed (refused into ``home``'s quarantine, never the real state dir's)."""
    dest.mkdir(parents=True, exist_ok=True)
    home.mkdir(parents=True, exist_ok=True)
    report, malicious = asyncio.run(_demo(dest, home, console))
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
    console.print(f"Models are in {dest}; refused files are in {quarantine_dir(home)}.")
    return 0 if ok else 1


def demo_config(ca_file: Path, models: Path) -> str:
    """The demo's config.toml: trust the simulator's CA, and ``models`` as ``bulk.dest``
    (what Browse queues goes there, and its library view checks that folder)."""
    return (
        f"[network]\nca_bundle = {json.dumps(str(ca_file))}\n"
        'no_proxy = "127.0.0.1,::1,localhost"\n'
        f"[bulk]\ndest = {json.dumps(str(models.resolve()))}\n"
    )


async def run_tui_demo(home: Path, models: Path) -> None:
    """The UI with an embedded engine on the simulator and a sample queue."""
    from civitai_tui.engine.core import Engine
    from civitai_tui.tui.embedded import run_embedded_async

    shutil.rmtree(home, ignore_errors=True)  # stale signed URLs point at old ports
    home.mkdir(parents=True)
    token = secrets.token_hex(16)
    sim = await start_simulator(tokens={token}, tls="storage", gallery=GALLERY_MODELS)
    assert sim.ca is not None
    (home / "config.toml").write_text(demo_config(sim.ca.ca_file, models))
    specials = sim.catalogue.specials
    # Slow storage for the two big files (about 1 and 4 minutes), so there is
    # progress to watch, pause and resume whatever connections the optimizer opens.
    for slow in (specials.large, specials.huge):
        sim.faults.set(slow.file_id, per_connection_rate=1_000_000, total_rate=DEMO_RATE)
    targets, _ = sample_targets(sim.catalogue)
    creator = sim.catalogue.models[0].creator
    options = JobOptions(dest=str(models), nsfw=True)

    async def queue_sample(engine: Engine) -> None:
        for target in targets:
            await engine.manager.add_job([describe_target(target)], options=options)
        await engine.manager.add_job([f"user:{creator}"], options=options, priority=-1)
        await engine.manager.add_job([f"model:{specials.huge.model_id}"], options=options)
        # One that fails (the model was archived): its details say why, `r` retries.
        await engine.manager.add_job([f"model:{specials.archived.model_id}"], options=options)

    try:
        await run_embedded_async(
            lambda: Engine(home, environment=Environment(sim.api_url, token)),
            setup=queue_sample,
            title="civitai-tui demo",
        )
    finally:
        await sim.close()
