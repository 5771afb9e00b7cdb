"""Error answers of the simulated API: an exception carrying status, JSON body, headers."""

from __future__ import annotations

from typing import Any

from aiohttp import web


class ApiError(Exception):
    """An error answer of the API: a status and a JSON body (and extra headers)."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body
        self.headers = headers or {}

    def response(self) -> web.Response:
        return web.json_response(self.body, status=self.status, headers=self.headers)


def zod_error(path: str, message: str, code: str = "custom", **extra: Any) -> ApiError:
    """A 400 shaped like the real server's Zod validation errors."""
    issue = {"code": code, "path": [path], "message": message, **extra}
    return ApiError(400, {"error": f"Invalid {path}: {message}", "issues": [issue]})
