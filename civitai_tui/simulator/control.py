"""Runtime control over HTTP (on the API origin): set and reset faults, read stats.

``POST /_sim/faults`` with ``{"file_id": 7, "faults": {knob: value}}`` (no
``file_id``: global) and/or ``{"api_faults": {knob: value}}``; ``DELETE
/_sim/faults`` resets every fault; ``GET /_sim/stats`` returns the counters.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from civitai_tui.simulator.faults import ApiFaults, FaultBoard
from civitai_tui.simulator.stats import SimulatorStats


@dataclass
class Control:
    faults: FaultBoard
    api_faults: ApiFaults
    stats: SimulatorStats

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/_sim/faults", self.set_faults),
            web.delete("/_sim/faults", self.reset_faults),
            web.get("/_sim/stats", self.get_stats),
        ]

    async def set_faults(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            file_id = body.get("file_id")
            if file_id is not None and not isinstance(file_id, int):
                raise TypeError("file_id must be an integer")
            self.faults.set(file_id, **body.get("faults", {}))
            self.api_faults.update(**body.get("api_faults", {}))
        except (ValueError, TypeError, AttributeError) as error:
            return web.json_response({"error": f"bad fault request: {error}"}, status=400)
        return web.json_response({"ok": True})

    async def reset_faults(self, request: web.Request) -> web.Response:
        self.faults.reset()
        self.api_faults.update(**vars(ApiFaults()))
        return web.json_response({"ok": True})

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats.as_json())
