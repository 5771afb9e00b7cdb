"""Render each TUI screen with real data from the simulator into ``screenshots/*.svg``.

An embedded engine downloads a sample of the simulator's catalogue (one slow
checkpoint stays in flight, one job is paused), then the app is driven
headless at 120x40: jobs, job detail, add dialog, performance, analytics, and
the jobs screen once per theme. Run: ``.venv/bin/python scripts/screenshots.py``.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import tempfile
import time
from pathlib import Path

from textual.pilot import Pilot

from civitai_tui.config import Config, Environment
from civitai_tui.engine.client import EngineClient
from civitai_tui.engine.core import Engine
from civitai_tui.engine.server import start_api
from civitai_tui.simulator.server import Simulator, start_simulator
from civitai_tui.tui.app import CivitaiTuiApp, make_app

OUT = Path(__file__).resolve().parent.parent / "screenshots"
SIZE = (120, 40)


async def settle(pilot: Pilot[None], seconds: float) -> None:
    await pilot.pause(seconds)


async def queue_sample(client: EngineClient, sim: Simulator, dest: Path) -> None:
    lora_ids = [m.id for m in sim.catalogue.models if m.type == "LORA" and not m.mode][:4]
    done = await client.add(
        [f"model:{i}" for i in lora_ids[:2]], options={"dest": str(dest)}, name="Two LoRAs"
    )
    await client.wait([done["id"]], timeout=60)
    large = sim.catalogue.specials.large
    sim.faults.set(large.file_id, per_connection_rate=400_000)
    await client.add([f"model:{large.model_id}"], options={"dest": str(dest)}, priority=5)
    paused = await client.add([f"model:{lora_ids[2]}"], options={"dest": str(dest)})
    await client.action(paused["id"], "pause")
    await client.add(
        [f"user:{sim.catalogue.models[0].creator}"], options={"dest": str(dest), "limit": 5}
    )
    await client.add(
        [f"model:{sim.catalogue.specials.archived.model_id}"], options={"dest": str(dest)}
    )


def shot(app: CivitaiTuiApp, name: str) -> None:
    app.save_screenshot(filename=f"{name}.svg", path=str(OUT))
    print(f"wrote {OUT / name}.svg", file=sys.stderr)


async def main() -> None:
    OUT.mkdir(exist_ok=True)
    token = secrets.token_hex(16)
    sim = await start_simulator(tokens={token})
    home = Path(tempfile.mkdtemp(prefix="civitai-shots-"))
    engine = Engine(
        home,
        config=Config.load(home / "config.toml", environ={}),
        environment=Environment(sim.api_url, token),
    )
    await engine.start()
    runner = await start_api(engine, home / "engine.sock")
    try:
        async with EngineClient(home / "engine.sock") as client:
            await queue_sample(client, sim, home / "models")
            app = make_app(client, home)
            async with app.run_test(size=SIZE) as pilot:
                await settle(pilot, 4.0)
                shot(app, "jobs")
                await pilot.press("d")
                await settle(pilot, 1.0)
                shot(app, "job-detail")
                await pilot.press("d", "a", *"user:", *sim.catalogue.models[1].creator, "enter")
                await settle(pilot, 2.0)
                shot(app, "add-dialog")
                await pilot.press("escape", "2")
                await settle(pilot, 3.0)
                shot(app, "performance")
                await pilot.press("3")
                await settle(pilot, 2.0)
                shot(app, "analytics")
                await pilot.press("1")
                for theme in app.our_themes:
                    app.theme = theme
                    await settle(pilot, 0.5)
                    shot(app, f"theme-{theme}")
    finally:
        await runner.cleanup()
        await engine.stop()
        await sim.close()


if __name__ == "__main__":
    started = time.monotonic()
    asyncio.run(main())
    print(f"done in {time.monotonic() - started:.1f} s", file=sys.stderr)
