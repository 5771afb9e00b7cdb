"""The report formats: a light module, so the CLI can list them without loading the writers."""

from __future__ import annotations

from enum import StrEnum

from civitai_tui.errors import CivitaiTuiError, FailureKind


class ReportFormat(StrEnum):
    HTML = "html"
    JSON = "json"
    PDF = "pdf"

    @classmethod
    def parse(cls, value: str) -> ReportFormat:
        try:
            return cls(value.lower().lstrip("."))
        except ValueError:
            choices = ", ".join(f.value for f in cls)
            raise CivitaiTuiError(
                FailureKind.BAD_TARGET,
                f"unknown report format {value!r}; choose one of {choices}",
            ) from None
