"""The JSON report: the analysed period as data, with a versioned schema.

Top level::

    {"schema": "civitai-tui/analytics-report", "schema_version": 1,
     "generator": "civitai-tui 0.1.0", ...AnalyticsReport fields...}

Fields (see :mod:`civitai_tui.analytics.summary` for their meaning): ``period``
{since, until, utc_offset}, ``generated_at``, ``totals``, ``speed`` (bytes/s:
count, mean, median, p95, min, max), ``failures_by_cause`` [{name, count}],
``hosts`` / ``model_types`` / ``base_models`` [{name, completed, failed, bytes,
success_rate, median_speed}], ``daily`` [{date, completed, failed, bytes,
success_rate}], ``hourly`` [24 ints], ``weekdays`` [7 ints, Monday first],
``throughput`` [{ts, bytes_per_s}], ``speed_histogram`` [{low, high, count}],
``trends`` [{metric, first_half, second_half, change_pct, direction,
significance}], ``patterns`` [{kind, title, detail, confidence,
recommendations}], ``optimizer`` [{setting, decisions, last_value, last_reason,
last_ts}], ``recommendations`` [str], ``throughput_bucket_s`` (the length of
each throughput bucket), ``creator_names`` (pseudonymised, clear, mixed or
none), ``notes`` [str] (why something is missing). Times are epoch seconds (UTC), sizes
bytes, rates 0..1; a value that cannot be computed (no data) is ``null``.
:data:`REPORT_SCHEMA` is the same as a JSON Schema. A change that removes or
renames a field bumps :data:`SCHEMA_VERSION`; added fields do not.
"""

from __future__ import annotations

import json
from typing import Any

from civitai_tui import __version__
from civitai_tui.analytics.summary import AnalyticsReport

SCHEMA_ID = "civitai-tui/analytics-report"
SCHEMA_VERSION = 1

_NUM = {"type": ["number", "null"]}
_INT = {"type": "integer"}
_STR = {"type": "string"}


def _object(**props: Any) -> dict[str, Any]:
    return {"type": "object", "required": sorted(props), "properties": props}


def _list(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


_BREAKDOWN = _list(
    _object(name=_STR, completed=_INT, failed=_INT, bytes=_INT, success_rate=_NUM,
            median_speed=_NUM)
)  # fmt: skip

#: The JSON Schema (draft 2020-12) of a version-1 report.
REPORT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_ID,
    **_object(
        schema={"const": SCHEMA_ID},
        schema_version={"const": SCHEMA_VERSION},
        generator=_STR,
        period=_object(since={"type": "number"}, until={"type": "number"}, utc_offset=_INT),
        generated_at={"type": "number"},
        totals=_object(
            started=_INT,
            completed=_INT,
            failed=_INT,
            success_rate=_NUM,
            bytes=_INT,
            fetched_bytes=_INT,
            total_duration={"type": "number"},
            mean_duration=_NUM,
            retries=_INT,
            scans=_INT,
            unsafe_scans=_INT,
        ),
        speed=_object(count=_INT, mean=_NUM, median=_NUM, p95=_NUM, min=_NUM, max=_NUM),
        failures_by_cause=_list(_object(name=_STR, count=_INT)),
        hosts=_BREAKDOWN,
        model_types=_BREAKDOWN,
        base_models=_BREAKDOWN,
        daily=_list(_object(date=_STR, completed=_INT, failed=_INT, bytes=_INT, success_rate=_NUM)),
        hourly={**_list(_INT), "minItems": 24, "maxItems": 24},
        weekdays={**_list(_INT), "minItems": 7, "maxItems": 7},
        throughput=_list(_object(ts={"type": "number"}, bytes_per_s={"type": "number"})),
        speed_histogram=_list(_object(low={"type": "number"}, high={"type": "number"}, count=_INT)),
        trends=_list(
            _object(
                metric=_STR,
                first_half=_NUM,
                second_half=_NUM,
                change_pct=_NUM,
                direction={"enum": ["up", "down", "flat"]},
                significance={"enum": ["high", "medium", "low"]},
            )
        ),
        patterns=_list(
            _object(
                kind=_STR,
                title=_STR,
                detail=_STR,
                confidence={"type": "number"},
                recommendations=_list(_STR),
            )
        ),
        optimizer=_list(
            _object(
                setting=_STR,
                decisions=_INT,
                last_value=_STR,
                last_reason=_STR,
                last_ts={"type": "number"},
            )
        ),
        recommendations=_list(_STR),
        throughput_bucket_s=_INT,
        creator_names={"enum": ["pseudonymised", "clear", "mixed", "none"]},
        notes=_list(_STR),
    ),
}


def report_data(report: AnalyticsReport) -> dict[str, Any]:
    """The report as a JSON-ready dict, schema header first."""
    header = {
        "schema": SCHEMA_ID,
        "schema_version": SCHEMA_VERSION,
        "generator": f"civitai-tui {__version__}",
    }
    return {**header, **report.to_dict()}


def render_json(report: AnalyticsReport) -> str:
    return json.dumps(report_data(report), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
