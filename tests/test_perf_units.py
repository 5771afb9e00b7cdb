"""Unit tests of the optimizer's pure parts: classifier, tables, retry delays, modes, probes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from civitai_tui.binding import from_config
from civitai_tui.config import Config
from civitai_tui.perf import (
    NetworkCondition,
    OptimizationConfig,
    OptimizationMode,
    classify_network_condition,
    get_retry_delay,
)
from civitai_tui.perf.health import Trouble, classify_retry
from civitai_tui.perf.modes import parse_mode
from civitai_tui.perf.monitor import SystemMonitor, SystemSample, ThroughputTracker
from civitai_tui.perf.network import ConditionThresholds, ConditionWindow
from civitai_tui.perf.probe import HostProbe, Measurement, Phase
from civitai_tui.perf.recommend import per_connection_cap, recommendations
from civitai_tui.perf.retry import BASE_DELAYS
from civitai_tui.perf.tables import Action, next_chunk_size, system_verdict

MB = 1_000_000
C = NetworkCondition


@pytest.mark.parametrize(
    ("speeds", "expected"),
    [
        ([12 * MB] * 5, C.EXCELLENT),
        ([6 * MB] * 5, C.GOOD),
        ([2 * MB] * 5, C.FAIR),
        ([0.5 * MB] * 5, C.POOR),
        ([10 * MB] * 5, C.GOOD),  # "above 10", not "at least"
        ([1 * MB, 20 * MB, 1 * MB, 20 * MB], C.UNSTABLE),
        ([1 * MB, 20 * MB], C.EXCELLENT),  # too few samples to call it unstable
        ([], None),
    ],
)
def test_classifier_follows_the_seed_rule(speeds: list[float], expected: C | None) -> None:
    assert classify_network_condition(speeds) is expected


def test_the_ramp_after_an_idle_spell_is_not_called_unstable() -> None:
    ramp = [0.5 * MB, 5 * MB, 20 * MB, 30 * MB, 30 * MB, 31 * MB]
    naive, window = ConditionWindow(warmup=0), ConditionWindow()
    assert [naive.add(r, True) for r in ramp][-1] is C.UNSTABLE
    verdicts = [window.add(r, True) for r in ramp]
    assert verdicts[:3] == [None] * 3 and verdicts[3:] == [C.EXCELLENT] * 3
    assert window.add(0.0, False) is None  # idle: the next transfer warms up again
    assert window.add(0.1 * MB, True) is None and window.mean == pytest.approx(30.33 * MB, 0.01)


def test_classifier_thresholds_are_configurable() -> None:
    strict = ConditionThresholds(excellent=100 * MB, good=50 * MB, fair=20 * MB)
    assert classify_network_condition([30 * MB] * 3, strict) is C.FAIR
    assert classify_network_condition([30 * MB] * 3) is C.EXCELLENT


def test_table_sheds_on_cpu_or_memory_and_grows_only_on_a_quiet_machine() -> None:
    cfg = OptimizationConfig()
    assert system_verdict(80, 10, C.EXCELLENT, cfg).action is Action.SHED
    shed = system_verdict(10, 90, C.EXCELLENT, cfg)
    assert shed.action is Action.SHED and "memory 90 %" in shed.reason
    assert system_verdict(30, 30, C.GOOD, cfg).action is Action.GROW
    assert system_verdict(30, 30, C.FAIR, cfg).action is Action.HOLD
    assert system_verdict(60, 30, C.EXCELLENT, cfg).action is Action.HOLD
    assert system_verdict(30, 30, None, cfg).action is Action.HOLD
    # A machine busy with other work: fewer connections would not give the CPU back.
    assert system_verdict(95, 10, C.EXCELLENT, cfg, engine_cpu=3).action is Action.HOLD
    assert "this engine 40 %" in system_verdict(95, 10, C.GOOD, cfg, engine_cpu=40).reason


def test_chunk_table_doubles_on_excellent_and_halves_on_poor_within_limits() -> None:
    cfg = OptimizationConfig(min_chunk_size=64 * 1024, max_chunk_size=1024 * 1024)
    assert next_chunk_size(256 * 1024, C.EXCELLENT, cfg)[0] == 512 * 1024
    assert next_chunk_size(1024 * 1024, C.EXCELLENT, cfg) == (1024 * 1024, "")
    assert next_chunk_size(256 * 1024, C.UNSTABLE, cfg)[0] == 128 * 1024
    assert next_chunk_size(64 * 1024, C.POOR, cfg) == (64 * 1024, "")
    assert next_chunk_size(256 * 1024, C.GOOD, cfg) == (256 * 1024, "")
    minimal = OptimizationConfig(mode=OptimizationMode.MINIMAL, min_chunk_size=64 * 1024)
    assert next_chunk_size(4 << 20, C.EXCELLENT, minimal)[0] == 64 * 1024


@pytest.mark.parametrize("condition", list(C))
def test_retry_delay_base_follows_the_network_with_jitter(condition: C) -> None:
    base = BASE_DELAYS[condition]
    for attempt in (1, 2, 3):
        delay = get_retry_delay(condition, attempt)
        expected = base * 2 ** (attempt - 1)
        assert expected * 0.9 <= delay <= expected * 1.1


def test_retry_delay_is_capped_and_honours_retry_after() -> None:
    assert get_retry_delay(C.UNSTABLE, 30) <= 60.0
    assert 7.0 <= get_retry_delay(C.EXCELLENT, 1, retry_after=7.0) <= 7.7
    assert [BASE_DELAYS[c] for c in C] == [0.5, 1.0, 1.5, 2.0, 3.0]


def test_modes_have_documented_limits_and_read_the_config(tmp_path) -> None:
    config = Config.load(
        tmp_path / "c.toml", environ={"CIVITAI_TUI_PERFORMANCE__MAX_CONNECTIONS": "20"}
    )
    cfg = from_config(OptimizationConfig, config)
    assert cfg.mode is OptimizationMode.ADAPTIVE and cfg.connection_ceiling == 20
    speed = OptimizationConfig(mode=OptimizationMode.SPEED, max_connections=20)
    efficiency = OptimizationConfig(mode=OptimizationMode.EFFICIENCY)
    minimal = OptimizationConfig(mode=OptimizationMode.MINIMAL)
    assert (speed.connection_ceiling, speed.start_connections) == (20, 8)
    assert efficiency.connection_ceiling == 16 and efficiency.shed_cpu == 50.0
    assert minimal.connection_ceiling == 2 and not minimal.limits.probe
    assert parse_mode(" SPEED ") is OptimizationMode.SPEED
    with pytest.raises(ValueError, match="expected one of speed, efficiency"):
        parse_mode("turbo")


def feed(probe: HostProbe, rate_of, ticks: int, start: float = 0.0) -> tuple[float, list]:
    """Run ``ticks`` probe ticks of 0.5 s with throughput ``rate_of(budget)``; the steps taken."""
    now, steps = start, []
    for _ in range(ticks):
        now += 0.5
        step = probe.tick(rate_of(probe.budget), probe.budget, now)
        if step is not None:
            steps.append(step)
    return now, steps


def test_probe_jumps_then_climbs_on_a_per_connection_cap() -> None:
    probe = HostProbe("h", 2, 64, 0.1)
    _, steps = feed(probe, lambda n: min(n * 2 * MB, 100 * MB), 40)
    assert (steps[0].old, steps[0].new) == (2, 32)  # 2 MB/s per connection: a cap, jump x16
    assert probe.budget == 64 and probe.phase is Phase.HOLD  # the ceiling; less would lose
    assert "do fewer than 64 connections keep the throughput" in steps[-2].reason
    assert "too much lost" in steps[-1].reason and steps[-1].new == 64


def test_a_new_host_is_judged_on_its_first_tick_with_bytes() -> None:
    waiting = HostProbe("h", 1, 64, 0.1)
    assert waiting.tick(0.0, 10, 0.1) is None  # connections open, no bytes yet: nothing to judge
    for probe in (waiting, HostProbe("h", 1, 64, 0.1)):
        step = probe.tick(200 * MB, 10, 0.2)  # 20 MB/s per connection: capped
        assert step is not None and (step.old, step.new) == (1, 64)  # 10 open x 16, ceiling


def test_probe_sheds_connections_that_add_nothing() -> None:
    probe = HostProbe("h", 2, 64, 0.1)
    _, steps = feed(probe, lambda n: 50 * MB, 40)
    assert steps[0].new == 32 and "no gain worth keeping" in steps[1].reason
    assert probe.budget == 1 and probe.phase is Phase.HOLD


def test_fast_connections_probe_down_first_and_speed_never_sheds() -> None:
    adaptive = HostProbe("h", 4, 64, 0.1)
    _, steps = feed(adaptive, lambda n: 400 * MB, 12)
    assert [(s.old, s.new) for s in steps] == [(4, 2), (2, 1)]
    speed = HostProbe("h", 8, 64, 0.05, shed_probe=False)
    _, steps = feed(speed, lambda n: 400 * MB, 12)
    assert [(s.old, s.new) for s in steps] == [(8, 16), (16, 8)]
    assert speed.phase is Phase.HOLD


def test_an_overshoot_past_a_total_cap_is_bisected_then_trimmed() -> None:
    probe = HostProbe("h", 1, 64, 0.1)
    _, steps = feed(probe, lambda n: min(n * 10 * MB, 200 * MB), 80)  # 10 MB/s each, 200 total
    moves = [(s.old, s.new) for s in steps]
    assert moves[:3] == [(1, 16), (16, 64), (64, 32)]  # jump, x4, then the geometric midpoint
    assert "but the rate rose: trying 32" in steps[2].reason
    assert 20 <= probe.budget <= 24  # fewer that still fill the cap: 20 x 10 MB/s
    assert probe.phase is Phase.HOLD


def test_a_probe_down_that_loses_throughput_is_undone() -> None:
    probe = HostProbe("h", 8, 64, 0.1)
    _, steps = feed(probe, lambda n: min(n, 8) * 40 * MB, 20)  # 40 MB/s each, 320 MB/s link
    assert [(s.old, s.new) for s in steps] == [(8, 4), (4, 10), (10, 8)]  # then additive
    assert probe.budget == 8 and probe.phase is Phase.HOLD


def test_a_burst_of_refusals_tells_the_limit_and_the_budget_sits_there() -> None:
    probe = HostProbe("h", 16, 64, 0.1)
    for _ in range(10):  # 16 open: 10 refused, 6 served
        probe.refused("HTTP 503", 16, now=10.0)
    assert probe.phase is Phase.BURST and probe.tick(6 * MB, 6, 10.2) is None  # still watching
    step = probe.tick(6 * MB, 6, 10.5)
    assert step is not None and step.new == 6 and "allows 6" in step.reason
    assert probe.conn_limit == 6 and probe.limit() == 6 and probe.bursts == 1
    feed(probe, lambda n: n * 2 * MB, 60, start=11.0)  # capped connections: it would climb
    assert probe.budget == 6 and probe.conn_limit == 6  # the limit is a ceiling, not a wait
    probe.refused("HTTP 503", 6, now=30.0)  # a second burst: the limit fell
    probe.refused("HTTP 503", 6, now=30.0)
    step = probe.tick(4 * MB, 4, 30.5)
    assert step is not None and step.new == 4 and "again" in step.reason
    assert probe.conn_limit == 4 and probe.bursts == 2


def test_a_hang_burst_counts_the_connections_served_at_best_not_those_left_hanging() -> None:
    probe = HostProbe("h", 32, 64, 0.1)
    for _ in range(26):  # 26 requests hung past the answer deadline, 6 are served
        probe.refused("connections closed unanswered", 6, now=10.0)
    assert probe.tick(6 * MB, 6, 10.1) is None  # 26 more open, waiting for an answer
    assert probe.tick(3 * MB, 3, 10.5) is not None  # served ones at a segment boundary
    assert probe.conn_limit == 6 and probe.budget == 6  # the most seen served at once


def test_a_burst_that_leaves_a_gap_is_bisected() -> None:
    probe = HostProbe("h", 32, 64, 0.1)
    probe.refused("HTTP 429", 32, now=1.0)  # one refusal seen, 4 served: the limit is 4..31
    step = probe.tick(4 * MB, 4, 1.5)
    assert step is not None and step.new == 4 and probe.phase is Phase.BISECT
    server_limit = 9
    now, moves = 1.5, []
    for _ in range(200):
        now += 0.1
        if probe.budget > server_limit and probe.phase is not Phase.BURST:
            probe.refused("HTTP 429", probe.budget, now)
        served = min(probe.budget, server_limit)
        step = probe.tick(served * MB, served, now)
        if step is not None:
            moves.append(step.new)
        if probe.phase is Phase.HOLD:
            break
    assert probe.conn_limit == server_limit == probe.budget
    assert len(moves) <= 8 and probe.bursts == 1  # bisection steps are not new bursts


def test_capped_connections_scale_with_the_files() -> None:
    probe = HostProbe("h", 1, 64, 0.1)
    step = probe.tick(2 * MB, 1, 0.1)  # one file, 2 MB/s per connection: capped
    assert step is not None and step.new == 16 and probe.capped
    step = probe.files_changed(3, 0.2)
    assert step is not None and step.new == 48 and "each of 3 files" in step.reason
    assert probe.files_changed(2, 0.3) is None  # fewer files keep the host's connections
    assert probe.files_changed(6, 0.4).new == 64  # the ceiling
    uncapped = HostProbe("h", 4, 64, 0.1)
    uncapped.tick(400 * MB, 4, 0.1)
    assert not uncapped.capped and uncapped.files_changed(4, 0.2) is None


def test_a_speed_limit_stops_probes_up() -> None:
    probe = HostProbe("h", 4, 64, 0.1, rate_cap=8 * MB, cold=False)
    _, steps = feed(probe, lambda n: min(n * 2 * MB, 8 * MB), 30)
    assert all(s.new <= 4 for s in steps)


def test_reset_burst_cuts_and_modes_without_probing_stay_fixed() -> None:
    probe = HostProbe("h", 8, 64, 0.1)
    assert probe.connection_errors(1, 1.0) is None
    assert probe.connection_errors(4, 2.0).new == 6
    fixed = HostProbe("h", 1, 2, 1.0, probing=False)
    feed(fixed, lambda n: n * MB, 20)
    assert fixed.budget == 1
    assert fixed.system(False, True, "quiet", 1.0).new == 2
    assert fixed.system(True, False, "CPU 90 %", 2.0).new == 1


def test_per_connection_cap_recommendation() -> None:
    history = [Measurement(n, n, n * 2 * MB) for n in (4, 8, 16, 24)]
    assert per_connection_cap(history) == pytest.approx(2 * MB)
    assert per_connection_cap([Measurement(n, n, 50 * MB) for n in (4, 8)]) is None
    probe = HostProbe("cdn.example", 24, 64, 0.1)
    probe.history.extend(history)
    probe.best = history[-1]
    advice = recommendations({"cdn.example": probe}, [], [], OptimizationConfig())
    assert any("caps each connection at about 1.9 MiB/s" in r.message for r in advice)


def test_retry_classification_and_tracker() -> None:
    assert classify_retry(503, "busy") is Trouble.THROTTLED
    assert classify_retry(None, "the connection broke mid-transfer") is Trouble.RESET
    assert classify_retry(None, "no data from the server for 30 s") is Trouble.STALLED
    assert classify_retry(500, "server error") is Trouble.ERROR
    tracker = ThroughputTracker()
    tracker.started("a", "h1")
    tracker.progress("a", 3000, 2)
    assert tracker.host_rate("h1") > 0 and tracker.connections("h1") == 2
    tracker.finished("a")
    assert tracker.sample() > 0 and tracker.per_host["h1"].history[-1] > 0


def test_system_monitor_never_blocks() -> None:
    import time

    monitor = SystemMonitor()
    started = time.perf_counter()
    sample = monitor.sample()
    assert time.perf_counter() - started < 0.05
    assert 0 <= sample.cpu_percent <= 100 and 0 < sample.memory_percent <= 100
    assert sample.engine_rss > 0


def test_stream_requests_count_in_the_health_board() -> None:
    from civitai_tui.perf.health import HealthBoard

    board = HealthBoard()
    board.record_stream("h", 0.2, True)
    board.record_stream("h", 0.4, False)
    health = board.host("h")
    assert health.requests == 2 and health.connections_opened == 1
    assert 0.2 < health.ttfb < 0.4  # an EWMA of the two


def test_steps_start_from_the_connections_open_when_files_outnumber_the_budget() -> None:
    probe = HostProbe("h", 1, 64, 0.1)
    now, steps = 0.0, []
    for _ in range(10):
        now += 0.5
        open_now = 10 * max(1, probe.budget // 10)  # ten files: one connection each at least
        step = probe.tick(open_now * 20 * MB, open_now, now)
        if step is not None:
            steps.append(step)
    assert (steps[0].old, steps[0].new) == (1, 64)  # 10 open x 16, within the ceiling


def test_efficiency_keeps_the_fewest_connections_within_90_percent_of_the_best() -> None:
    # 10 MB/s per connection, 100 MB/s in all: 10 connections fill it; 9 give 90 %.
    def rate(n: int) -> float:
        return min(n * 10 * MB, 100 * MB)

    efficiency = HostProbe("h", 2, 16, 0.10, keep_share=0.9)
    feed(efficiency, rate, 120)
    speed = HostProbe("h", 8, 64, 0.05, shed_probe=False)
    feed(speed, rate, 80)
    assert rate(efficiency.budget) >= 0.9 * rate(speed.budget)
    assert efficiency.budget < speed.budget / 2  # the fewest that keep 90 %


def kinds(
    probes: dict[str, HostProbe],
    samples: Sequence[SystemSample] = (),
    conditions: Sequence[NetworkCondition] = (),
    **config: Any,
) -> list[str]:
    return [
        r.kind
        for r in recommendations(
            probes, list(samples), list(conditions), OptimizationConfig(**config)
        )
    ]


def test_no_cap_is_claimed_from_a_narrow_or_scattered_history() -> None:
    narrow = [Measurement(n, n, n * MB) for n in (4, 5, 6)]  # never doubled
    assert per_connection_cap(narrow) is None
    scattered = [Measurement(2, 2, 1 * MB), Measurement(8, 8, 40 * MB)]
    assert per_connection_cap(scattered) is None


def test_flat_throughput_with_few_connections_says_more_do_not_help() -> None:
    probe = HostProbe("cdn.example", 2, 64, 0.1)
    probe.history.extend(Measurement(2, 2, 30 * MB) for _ in range(3))
    probe.best = probe.history[-1]
    [advice] = recommendations({"cdn.example": probe}, [], [], OptimizationConfig())
    assert advice.kind == "few_connections_enough" and advice.host == "cdn.example"
    assert "2 reach 28.6 MiB/s" in advice.message


def busy(cpu: float, memory: float) -> SystemSample:
    return SystemSample(cpu, memory, engine_cpu_percent=40.0, engine_rss=1 << 28)


def test_a_busy_machine_gets_cpu_and_memory_advice_unless_already_frugal() -> None:
    samples = [busy(99.0, 99.0)] * 5
    assert kinds({}, samples) == ["cpu", "memory"]
    assert kinds({}, samples, mode=OptimizationMode.EFFICIENCY) == ["memory"]
    assert kinds({}, [busy(1.0, 1.0)] * 5) == []


def test_unstable_network_advice_needs_a_notable_share() -> None:
    unstable, good = NetworkCondition.UNSTABLE, NetworkCondition.GOOD
    assert kinds({}, conditions=[]) == []
    assert kinds({}, conditions=[unstable] + [good] * 9) == []
    assert kinds({}, conditions=[unstable] * 3 + [good] * 7) == ["unstable_network"]
