"""The randomized sweep's profiles and report (the runs themselves are the bench's)."""

from __future__ import annotations

import random
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bench.sweep import MB, Profile, Row, Run, draw, load, save, simulator, summary, table
from civitai_tui.simulator.faults import Faults


def test_profiles_are_reproducible_valid_and_scaled_to_the_target() -> None:
    rng, same = random.Random(7), random.Random(7)
    first = [draw(rng, i, 3.0) for i in range(1, 40)]
    again = [draw(same, i, 3.0) for i in range(1, 40)]
    assert first == again  # a seed names a sweep
    for profile in first:
        Faults().update(**profile.knobs())  # every knob is one the simulator has
        assert 1 <= len(profile.sizes) <= 20
        seconds = sum(profile.sizes) / profile.expected_rate()
        assert seconds <= 3.0 * 1.01 or min(profile.sizes) == 1 << 20
        if profile.limit:
            assert 2 <= profile.limit <= 16
            assert profile.limit_answer in ("503", "429", "reset", "hang")
    assert any(p.limit for p in first) and any(p.per_connection for p in first)


def test_the_physical_limit_is_the_least_of_the_caps() -> None:
    profile = Profile(1, 2 * MB, 100 * MB, 8, "503", 0.0, 0.0, 0.0, [MB], [MB])
    assert profile.physical_rate == 16 * MB
    assert Profile(2, 2 * MB, 0, 0, "503", 0.0, 0.0, 0.0, [MB], [MB]).physical_rate is None


def _run(client: str, seconds: float, ok: bool = True) -> Run:
    return Run(1, client, ok, seconds, False, 4, 1, 0, 0, 40.0, None if ok else "failed")


def test_the_report_counts_an_aria2c_failure_as_ours_and_round_trips(tmp_path: Path) -> None:
    profile = Profile(1, 2 * MB, 0, 4, "429", 0.0, 0.0, 0.0, [8 * MB], [8 * MB])
    runs = [_run("adaptive-cold", 2.0), _run("fixed-4", 1.9), _run("aria2c", 9.0, ok=False)]
    rows = [Row(profile, runs)]
    lines = "\n".join(summary(rows))
    assert "at least as fast as aria2c on 1/1 profiles" in lines
    assert "median 0.95" in lines  # 1.9 s best fixed / 2.0 s ours
    assert "| 1 | 2.0 MB/s/conn, limit 4 by 429" in table(rows)
    path = tmp_path / "sweep.json"
    save(path, 7, 3.0, rows, 12.0)
    seed, loaded, seconds = load(path)
    assert (seed, seconds) == (7, 12.0) and loaded[0].runs == runs


def test_half_the_profiles_are_https_unless_told_otherwise() -> None:
    rng = random.Random(3)
    profiles = [draw(rng, i, 3.0) for i in range(1, 41)]
    https = [p for p in profiles if p.https]
    assert 10 <= len(https) <= 30 and https[0].describe().startswith("HTTPS: ")
    assert not any(draw(rng, i, 3.0, https=0.0).https for i in range(1, 20))
    rows = [Row(p, [_run("adaptive-cold", 2.0), _run("fixed-4", 1.9)]) for p in profiles[:6]]
    lines = "\n".join(summary(rows))
    assert "  - HTTPS profiles: median 0.95" in lines and "  - HTTP profiles: median 0.95" in lines


@pytest.mark.slow
def test_an_https_profile_is_served_over_tls_from_the_ca_it_names() -> None:
    with simulator([1 << 20], tls=True) as sim:
        (url,) = sim["urls"]
        assert url.startswith("https://127.0.0.1:")
        context = ssl.create_default_context(cafile=sim["ca_file"])
        with urllib.request.urlopen(url, context=context) as answer:
            assert len(answer.read()) == 1 << 20
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            urllib.request.urlopen(url, context=ssl.create_default_context())
