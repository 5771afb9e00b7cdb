"""Patterns in the analysed period, each with a confidence, and what to do about them.

Rules (all thresholds are module constants):

* peak hours: hours of day whose activity is above mean + one standard deviation
  of the 24 hourly counts; busiest weekdays: at least 1.25x the weekday mean.
  Both only with at least 20 downloads over at least 3 days (a single session
  says nothing about habits); below that a note says what is missing.
* slow host: median speed under half the overall median (at least 3 downloads);
  failing host: at least 20 % failures (at least 3 attempts).
* retry storm: a minute with at least 10 retries scheduled.
* verification: files that failed hash, size or format checks (a retry may fix a
  corrupt transfer); unsafe files: refused by the pickle scan or CivitAI's own
  scan (a retry never will: the advice says so).

Confidence grows linearly with the evidence (``samples / CONFIDENT_SAMPLES``)
up to 1.0, so a pattern seen in three downloads is reported but flagged weak.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from civitai_tui.analytics.summary import Breakdown, Count, Pattern, Totals

CONFIDENT_SAMPLES = 50
MIN_HOST_SAMPLES = 3
SLOW_HOST_FACTOR = 0.5
FAILING_HOST_RATE = 0.2
BUSY_WEEKDAY_FACTOR = 1.25
LOW_SUCCESS_RATE = 0.9
MIN_TIME_PATTERN_DOWNLOADS = 20
MIN_TIME_PATTERN_DAYS = 3
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

#: What a user can do about each FailureKind value.
FAILURE_ADVICE = {
    "auth_required": "Set CIVITAI_API_KEY to a valid CivitAI API key (account settings).",
    "forbidden": "Check that your account may download these models (some need a login).",
    "early_access": "Some versions are in early access; retry after their early-access deadline.",
    "challenge": "CivitAI answered with a browser challenge; wait a while or lower concurrency.",
    "not_found": "Remove models or versions that no longer exist from your queues.",
    "gone": "Remove archived or taken-down models from your queues.",
    "quota": "The daily download quota ran out; spread large batches over several days.",
    "rate_limited": "Lower concurrency or add a pause between batches to avoid rate limits.",
    "server": "CivitAI had server errors; failed files can be retried later.",
    "network": "Network errors were frequent; check the connection or lower concurrency.",
    "stalled": "Downloads stalled; a lower connection count per file may be steadier.",
    "protocol": "A storage host sent malformed responses; retry, and report it if it persists.",
    "bad_content": "Error pages came instead of files; check the API key and the model pages.",
    "size_mismatch": "Files arrived with the wrong size; retry them, and check free disk space.",
    "hash_mismatch": "Files failed their SHA256 check; retry them, and check disk and RAM health.",
    "invalid_format": "Files had broken headers; retry them, and report the model if it repeats.",
    "unsafe": "Files refused as unsafe were quarantined; do not retry them: prefer "
    ".safetensors versions of those models.",
    "disk_full": "The disk filled up; free space or choose another destination.",
    "filesystem": "Files could not be written; check the destination's permissions.",
}


@dataclass(frozen=True, slots=True)
class Evidence:
    """The aggregates the pattern rules look at."""

    totals: Totals
    hosts: list[Breakdown]
    hourly: list[int]
    weekdays: list[int]
    failures_by_cause: list[Count]
    host_failure_causes: dict[str, list[Count]]  # host name -> its failures, commonest first
    retry_storms: list[int]  # retries in each storm minute
    verify_failures: list[Count]  # file name, failures (hash, size, format)
    unsafe_files: list[Count]  # file name, refusals (pickle scan, CivitAI scan)
    overall_median_speed: float | None
    active_days: int = 0  # days of the period with at least one finished download

    @property
    def enough_for_time_patterns(self) -> bool:
        return (
            sum(self.hourly) >= MIN_TIME_PATTERN_DOWNLOADS
            and self.active_days >= MIN_TIME_PATTERN_DAYS
        )


def confidence(samples: int) -> float:
    return round(min(1.0, samples / CONFIDENT_SAMPLES), 2)


def find_patterns(ev: Evidence) -> list[Pattern]:
    """Every pattern the rules find, strongest evidence first."""
    timed = ev.enough_for_time_patterns
    found = [
        *(_peak_hours(ev.hourly) if timed else []),
        *(_busy_weekdays(ev.weekdays) if timed else []),
        *_host_patterns(ev.hosts, ev.overall_median_speed, ev.host_failure_causes),
        *_retry_storms(ev.retry_storms),
        *_verify_failures(ev.verify_failures),
        *_unsafe_files(ev.unsafe_files),
        *_low_success(ev.totals, ev.failures_by_cause),
    ]
    return sorted(found, key=lambda p: -p.confidence)


def _peak_hours(hourly: list[int]) -> list[Pattern]:
    total = sum(hourly)
    if total == 0:
        return []
    cut = statistics.fmean(hourly) + statistics.pstdev(hourly)
    peaks = [h for h, n in enumerate(hourly) if n > cut]
    if not peaks:
        return []
    share = sum(hourly[h] for h in peaks) / total
    names = ", ".join(f"{h:02d}:00" for h in peaks)
    return [
        Pattern(
            "peak_hours",
            "Peak hours",
            f"{share:.0%} of downloads finish in {len(peaks)} hour(s): {names}.",
            confidence(total),
            [f"Schedule large batches outside {names} to keep bandwidth free when you are busy."],
        )
    ]


def _busy_weekdays(weekdays: list[int]) -> list[Pattern]:
    total = sum(weekdays)
    if total == 0:
        return []
    cut = statistics.fmean(weekdays) * BUSY_WEEKDAY_FACTOR
    busy = [WEEKDAYS[d] for d, n in enumerate(weekdays) if n >= cut]
    if not busy:
        return []
    return [
        Pattern(
            "busy_weekdays",
            "Busiest weekdays",
            f"Most downloads happen on {', '.join(busy)}.",
            confidence(total),
        )
    ]


def _host_patterns(
    hosts: list[Breakdown], overall_median: float | None, causes: dict[str, list[Count]]
) -> list[Pattern]:
    out = []
    for h in hosts:
        attempts = h.completed + h.failed
        if attempts < MIN_HOST_SAMPLES:
            continue
        if h.success_rate is not None and 1 - h.success_rate >= FAILING_HOST_RATE:
            out.append(_failing_host(h, attempts, causes.get(h.name, [])))
        if (
            overall_median
            and h.median_speed is not None
            and h.completed >= MIN_HOST_SAMPLES
            and h.median_speed < overall_median * SLOW_HOST_FACTOR
        ):
            out.append(
                Pattern(
                    "slow_host",
                    f"Slow host: {h.name}",
                    f"Median speed from {h.name} is {h.median_speed / overall_median:.0%} "
                    "of the overall median.",
                    confidence(h.completed),
                    [f"Use more connections per file for {h.name}, or download it off-peak."],
                )
            )
    return out


def _failing_host(host: Breakdown, attempts: int, causes: list[Count]) -> Pattern:
    """A host that fails often; the advice is that of its commonest failure cause."""
    detail = f"{host.failed / attempts:.0%} of {attempts} downloads from {host.name} failed"
    advice = f"Lower concurrency for {host.name}, or retry its files later."
    if causes:
        detail += f", mostly {causes[0].name} ({causes[0].count} of {host.failed})"
        advice = FAILURE_ADVICE.get(causes[0].name, advice)
    return Pattern(
        "failing_host", f"Failing host: {host.name}", detail + ".", confidence(attempts), [advice]
    )


def _retry_storms(storms: list[int]) -> list[Pattern]:
    if not storms:
        return []
    return [
        Pattern(
            "retry_storm",
            "Retry storms",
            f"{len(storms)} minute(s) with at least {min(storms)} retries "
            f"(up to {max(storms)} in one minute, {sum(storms)} in total).",
            confidence(sum(storms)),
            [
                "Lower concurrency: many retries in a minute usually mean rate limits or "
                "a failing network."
            ],
        )
    ]


def _verify_failures(files: list[Count]) -> list[Pattern]:
    if not files:
        return []
    names = ", ".join(f.name for f in files[:5])
    return [
        Pattern(
            "verification_failures",
            "Files failing verification",
            f"{len(files)} file(s) failed hash, size or format checks: {names}.",
            1.0,
            ["Retry these files; if one fails again, report the model on CivitAI."],
        )
    ]


def _unsafe_files(files: list[Count]) -> list[Pattern]:
    if not files:
        return []
    names = ", ".join(f.name for f in files[:5])
    return [
        Pattern(
            "unsafe_files",
            "Files refused as unsafe",
            f"{len(files)} file(s) were refused by a safety scan (quarantined, never placed): "
            f"{names}.",
            1.0,
            [
                "Do not retry files refused as unsafe: the same content is refused again. "
                "Prefer a .safetensors version of those models, or report them on CivitAI."
            ],
        )
    ]


def _low_success(totals: Totals, causes: list[Count]) -> list[Pattern]:
    attempts = totals.completed + totals.failed
    rate = totals.success_rate
    if rate is None or rate >= LOW_SUCCESS_RATE or attempts < MIN_HOST_SAMPLES:
        return []
    top = causes[0].name if causes else "unknown"
    advice = FAILURE_ADVICE.get(top)
    return [
        Pattern(
            "low_success_rate",
            "Low success rate",
            f"Only {rate:.1%} of {attempts} downloads succeeded; the main cause is {top}.",
            confidence(attempts),
            [advice] if advice else [],
        )
    ]


def recommendations(ev: Evidence, patterns: list[Pattern]) -> list[str]:
    """Pattern advice, then advice per failure cause (the optimizer's decisions are
    reported on their own: they are what it did, not what the user should do)."""
    out: list[str] = []
    for p in patterns:
        out.extend(r for r in p.recommendations if r not in out)
    for cause in ev.failures_by_cause:
        advice = FAILURE_ADVICE.get(cause.name)
        if advice and advice not in out:
            out.append(advice)
    return out


def notes(ev: Evidence) -> list[str]:
    """What the report cannot say for lack of data, and the minimum it needs."""
    out = []
    if not ev.enough_for_time_patterns and sum(ev.hourly):
        out.append(
            f"Time-of-day and weekday patterns need at least {MIN_TIME_PATTERN_DOWNLOADS} "
            f"downloads over at least {MIN_TIME_PATTERN_DAYS} days; this period has "
            f"{sum(ev.hourly)} over {ev.active_days} day(s)."
        )
    if ev.totals.completed == 0:
        out.append("No download completed in this period: speeds and medians need at least one.")
    return out
