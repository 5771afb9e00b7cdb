"""The HTML report opened in a real headless Chromium, driven over the DevTools protocol.

Checks that every chart renders (plot SVG with drawn traces), that nothing is
logged as an error, that the page makes no network request, and that the card
grid collapses to one column on a narrow screen.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from civitai_tui.analytics.analyzer import AnalyticsAnalyzer
from civitai_tui.analytics.collector import AnalyticsCollector
from civitai_tui.analytics.reports import ReportGenerator
from civitai_tui.events import FileCompleted, FileFailed, FileInfo, RetryScheduled

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium)"
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

PLOTS_JS = """
JSON.stringify([...document.querySelectorAll('.plot')].map(d => ({
  id: d.id,
  svg: d.querySelectorAll('svg.main-svg').length,
  traces: (d._fullData || []).length,
  marks: d.querySelectorAll('.barlayer .point path, .scatterlayer .js-line').length,
})))
"""
COLUMNS_JS = (
    "getComputedStyle(document.querySelector('.cards')).gridTemplateColumns.split(' ').length"
)


class DevTools:
    """A minimal Chrome DevTools Protocol client over one page's websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_id = 0
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            data = json.loads(msg.data)
            if "id" in data:
                self._waiting.pop(data["id"]).set_result(data)
            else:
                self.events.append(data)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        future = self._waiting[self._next_id] = asyncio.get_running_loop().create_future()
        await self.ws.send_json({"id": self._next_id, "method": method, "params": params})
        reply = await asyncio.wait_for(future, 20)
        assert "error" not in reply, reply
        return reply["result"]

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


async def poll(check, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.1)


def write_report(tmp_path: Path) -> Path:
    db = tmp_path / "analytics.db"
    now = time.time()
    with AnalyticsCollector(db) as collector:
        for i in range(30):
            f = FileInfo(key=f"k{i}", name=f"m{i}.safetensors", host=f"h{i % 3}")
            ts = now - 5 * 86400 + i * 14_000
            if i % 5:
                collector.record(
                    FileCompleted(
                        file=f,
                        path="/m",
                        bytes=(i + 1) * 10**7,
                        fetched_bytes=(i + 1) * 10**7,
                        sha256="0" * 64,
                        duration=10.0 + i,
                        ts=ts,
                    )
                )
            else:
                collector.record(FileFailed(file=f, kind="network", message="reset", ts=ts))
                collector.record(RetryScheduled(key=f.key, attempt=1, delay=1, reason="x", ts=ts))
    report = AnalyticsAnalyzer(db).analyze_days(7)
    return ReportGenerator(report).write(tmp_path / "report.html")


async def start_chromium(profile: Path) -> tuple[asyncio.subprocess.Process, int]:
    assert CHROMIUM is not None
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM,
        *FLAGS,
        f"--user-data-dir={profile}",
        "--remote-debugging-port=0",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    port_file = profile / "DevToolsActivePort"

    async def port_written() -> bool:
        return port_file.exists() and bool(port_file.read_text().strip())

    assert await poll(port_written, 30), "chromium did not open its DevTools port"
    return proc, int(port_file.read_text().split()[0])


async def test_report_renders_offline_without_errors(tmp_path: Path) -> None:
    page_path = write_report(tmp_path)
    proc, port = await start_chromium(tmp_path / "profile")
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as resp:
                target = next(t for t in await resp.json() if t["type"] == "page")
            async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                cdp = DevTools(ws)
                try:
                    await check_page(cdp, page_path)
                finally:
                    await cdp.close()
    finally:
        proc.terminate()
        await proc.wait()


async def check_page(cdp: DevTools, page_path: Path) -> None:
    for domain in ("Runtime", "Log", "Network", "Page"):
        await cdp.send(f"{domain}.enable")
    await cdp.send(
        "Emulation.setDeviceMetricsOverride",
        width=1280,
        height=900,
        deviceScaleFactor=1,
        mobile=False,
    )
    await cdp.send("Page.navigate", url=page_path.as_uri())

    async def rendered() -> list[dict[str, Any]] | None:
        plots = json.loads(await cdp.evaluate(PLOTS_JS) or "[]")
        return plots if len(plots) == 5 and all(p["svg"] and p["marks"] for p in plots) else None

    plots = await poll(rendered)
    assert plots, f"charts did not render: {await cdp.evaluate(PLOTS_JS)}"
    assert all(p["traces"] >= 1 for p in plots)
    assert await cdp.evaluate(COLUMNS_JS) > 1
    await cdp.send(
        "Emulation.setDeviceMetricsOverride",
        width=600,
        height=900,
        deviceScaleFactor=1,
        mobile=True,
    )
    assert await poll(lambda: _is_one_column(cdp)), "cards do not collapse under 768 px"

    errors = [e for e in cdp.events if _is_error(e)]
    assert errors == []
    requests = [
        e["params"]["request"]["url"]
        for e in cdp.events
        if e["method"] == "Network.requestWillBeSent"
    ]
    assert requests and all(u.startswith(("file:", "data:")) for u in requests), requests


async def _is_one_column(cdp: DevTools) -> bool:
    return await cdp.evaluate(COLUMNS_JS) == 1


def _is_error(event: dict[str, Any]) -> bool:
    method, params = event["method"], event.get("params", {})
    if method == "Runtime.exceptionThrown":
        return True
    if method == "Runtime.consoleAPICalled":
        return params.get("type") in ("error", "assert")
    return method == "Log.entryAdded" and params["entry"]["level"] == "error"
