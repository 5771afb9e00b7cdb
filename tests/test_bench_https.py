"""The bench's HTTPS parts: the target check (paired ratios against the issue's limits:
met, missed or not run) and the floor client that reads TLS bodies as our threads do."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest
from test_download_support import pick

from bench import floor
from bench.report import RunRecord, summarize
from bench.targets import TARGETS, check, cpu_per_gb, markdown
from civitai_tui.simulator.server import Simulator

GB = 1_000_000_000


def _run(profile: str, tool: str, rnd: int, wall: float, cpu: float, rss: float = 50) -> RunRecord:
    return RunRecord(profile, tool, rnd, wall, cpu, rss, rss, 1, 0.1, GB)


def _session() -> list[RunRecord]:
    records = []
    for rnd, (ours_c, ours_e) in enumerate([(2.0, 2.2), (3.0, 3.6), (2.5, 2.6)]):
        records += [
            _run("c", "aria2c", rnd, 4.0, 1.0),
            _run("c", "curl", rnd, 1.0, 2.0),
            _run("c", "ours", rnd, ours_c, 2.4, rss=130),
            _run("e", "ours", rnd, ours_e, 2.5),
        ]
    return records


def test_every_target_gets_the_paired_figure_and_a_verdict() -> None:
    records = _session()
    found = {c.target.label: c for c in check(summarize(records), records)}
    assert len(found) == len(TARGETS)
    aria = found["HTTPS unlimited: wall ÷ aria2c"]
    assert aria.value == 2.5 / 4.0 and aria.verdict == "met"  # median of 0.5, 0.75, 0.625
    curls = found["HTTPS unlimited: wall ÷ ten curls"]
    assert curls.value == 2.5 and curls.verdict == "MISSED"
    assert found["HTTPS unlimited: CPU ÷ ten curls"].value == 1.2
    assert found["HTTPS unlimited: peak RSS MiB"].verdict == "MISSED"  # 130 >= 120
    # e ÷ c per round: 1.1, 1.2, 1.04 -> median 1.1 (not the ratio of the medians, 1.04).
    proxy = found["HTTPS through the proxy: wall ÷ direct (e ÷ c)"]
    assert round(proxy.value or 0, 6) == 1.1 and proxy.verdict == "met"
    # Profiles that did not run are said to be missing, never passed.
    assert found["HTTP unlimited: wall ÷ aria2c"].verdict == "not run"


def test_a_failed_run_is_left_out_of_the_pairs() -> None:
    records = [*_session()[:4], _run("e", "ours", 1, 1.0, 1.0)]
    records[3] = RunRecord("e", "ours", 0, 9.9, 1.0, 50, 50, 1, 0.1, GB, ("exit codes [1]",))
    proxy = check(summarize(records), records)[-1]
    assert proxy.value is None and proxy.verdict == "not run"  # round 1 has no direct run


def test_cpu_per_gb_and_the_printed_block() -> None:
    records = _session()
    rows = summarize(records)
    assert cpu_per_gb(rows, records, "c") == {"aria2c": 1.0, "curl": 2.0, "ours": 2.4}
    text = markdown(rows, records, "0.5 / 1.2")
    assert "| HTTPS unlimited: wall ÷ ten curls | 1.5 | 2.50 | MISSED |" in text
    assert "CPU s per GB: aria2c 1.00, curl 2.00, ours 2.40" in text
    assert "Load average (1 min) at start and end: 0.5 / 1.2." in text


async def _floor(dest: Path, url: str, engine: str = "ssl") -> int:
    """The floor client in a thread (the simulator answers on this loop)."""
    return await asyncio.to_thread(floor.main, ["--engine", engine, "--dest", str(dest), url])


@pytest.mark.parametrize("engine", ["ssl", "bio"])
async def test_the_floor_client_fetches_over_tls_with_the_private_ca(
    tls_sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    assert tls_sim.ca is not None
    file = pick(tls_sim, 1 << 20, 8 << 20)
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_sim.ca.ca_file))
    assert await _floor(tmp_path, tls_sim.signed_url(file.id), engine) == 0
    [written] = tmp_path.iterdir()
    assert hashlib.sha256(written.read_bytes()).hexdigest() == file.sha256.lower()


@pytest.mark.parametrize("engine", ["ssl", "bio"])
async def test_the_floor_client_refuses_an_untrusted_server_and_proxies(
    tls_sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    engine: str,
) -> None:
    url = tls_sim.signed_url(pick(tls_sim, 1 << 20, 8 << 20).id)
    assert await _floor(tmp_path, url, engine) == 1  # the CA was not given
    assert "CERTIFICATE_VERIFY_FAILED" in capsys.readouterr().err
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    with pytest.raises(SystemExit):
        await _floor(tmp_path, url, engine)
    assert "never through a proxy" in capsys.readouterr().err
