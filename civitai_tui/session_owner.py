"""One idea shared by the API client and the engine client: owning an aiohttp session."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import aiohttp


class SessionOwner:
    """An async context manager that opens one session on enter and closes it on exit."""

    _session: aiohttp.ClientSession | None = None

    def _new_session(self) -> aiohttp.ClientSession:
        """The session this client talks through (made inside the running loop)."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        self._session = self._new_session()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
