"""Where the fleet's Valkey/Redis server is, with which credentials, and a client for it.

``fleet.url`` (config) or ``CIVITAI_TUI_FLEET`` (environment) names the server:

* ``redis://[user[:password]@]host[:port][/db]`` (default port 6379, database 0);
* ``rediss://...`` the same over TLS (system CAs plus ``network.ca_bundle``);
* ``unix://[user[:password]@]/path/to/socket[?db=N]``.

The ACL user and password come from the URL or, better, from ``fleet.password_file``
(a file only its owner can read, holding the password); both at once is refused.
Credentials are secrets: registered for masking at once, kept out of ``repr``, and
shown nowhere (:attr:`FleetUrl.display` masks them). Errors never repeat the text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import redis.asyncio as aioredis

from civitai_tui.config import Config
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.private import read_secret_file
from civitai_tui.security.redact import MASK, register_secret

SCHEMES = ("redis", "rediss", "unix")
DEFAULT_PORT = 6379
ENV_NAME = "CIVITAI_TUI_FLEET"
#: Seconds to connect and per command: a partitioned server must not hang an engine.
TIMEOUT = 5.0
FORMS = (
    "redis://[user:password@]host[:port][/db], rediss://… (TLS) or "
    "unix://[user:password@]/path/to/socket[?db=N]"
)
PASSWORD_HOWTO = (
    "put the password alone in a file only you can read (chmod 600) and set fleet.password_file"
)


@dataclass(frozen=True)
class FleetUrl:
    """The fleet server's address and credentials (credentials never in ``repr``)."""

    scheme: str
    host: str = ""
    port: int = DEFAULT_PORT
    socket: str = ""
    db: int = 0
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    @property
    def tls(self) -> bool:
        return self.scheme == "rediss"

    @property
    def display(self) -> str:
        """What logs, status and errors show: the address, credentials masked."""
        who = f"{MASK}@" if self.username or self.password else ""
        if self.scheme == "unix":
            db = f"?db={self.db}" if self.db else ""
            return f"unix://{who}{self.socket}{db}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        db = f"/{self.db}" if self.db else ""
        return f"{self.scheme}://{who}{host}:{self.port}{db}"

    def __str__(self) -> str:
        return self.display

    def client_options(self, ca_bundle: str = "") -> dict[str, Any]:
        """Keyword arguments for ``redis.asyncio.Redis`` (decoded answers, bounded waits)."""
        options: dict[str, Any] = {
            "db": self.db,
            "username": self.username,
            "password": self.password,
            "decode_responses": True,
            "socket_timeout": TIMEOUT,
            "socket_connect_timeout": TIMEOUT,
            "client_name": "civitai-tui",
        }
        if self.scheme == "unix":
            options["unix_socket_path"] = self.socket
        else:
            options.update(host=self.host, port=self.port)
        if self.tls:
            options["ssl"] = True
            if ca_bundle:
                options["ssl_ca_certs"] = str(Path(ca_bundle).expanduser())
        return options

    def client(self, ca_bundle: str = "") -> aioredis.Redis:
        """A client (a connection pool; nothing connects until the first command)."""
        return aioredis.Redis(**self.client_options(ca_bundle))


def fleet_url(config: Config) -> FleetUrl | None:
    """The configured fleet server (``fleet.url``, ``fleet.password_file``); None: no fleet."""
    text = config.get("fleet.url")
    if not text:
        return None
    source = ENV_NAME if config.overridden_by_env("fleet.url") else "fleet.url"
    return parse_fleet_url(text, source, config.get("fleet.password_file"))


def parse_fleet_url(text: str, source: str, password_file: str = "") -> FleetUrl:
    """The server in ``text``; ``source`` (``fleet.url``, ``CIVITAI_TUI_FLEET``) names it in errors.

    ``password_file`` (``fleet.password_file``) supplies the password instead of the URL.
    """
    raw = text.strip()
    try:
        parts = urlsplit(raw)
        port = parts.port if parts.scheme != "unix" else None
        query = dict(parse_qsl(parts.query))
    except ValueError:
        raise _bad(source, "it is not a URL") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise _bad(source, f"the scheme {scheme!r} is not supported" if scheme else "no scheme")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else query.pop("password", None)
    register_secret(password)
    if password_file:
        if password:
            raise _bad(source, "a password in the URL and fleet.password_file: keep one")
        password = read_secret_file(
            Path(password_file).expanduser(), "fleet password file", PASSWORD_HOWTO
        )
        register_secret(password)
    db_text = query.pop("db", "0") if scheme == "unix" else parts.path.strip("/") or "0"
    if not db_text.isdigit():
        raise _bad(source, "the database is not a number")
    if set(query) - {"db"}:
        raise _bad(source, f"unknown parameters {', '.join(sorted(query))}")
    if scheme == "unix":
        if not parts.path.startswith("/"):
            raise _bad(source, "a unix:// URL needs the socket's absolute path")
        return FleetUrl(
            scheme, socket=parts.path, db=int(db_text), username=username, password=password
        )
    if not parts.hostname:
        raise _bad(source, "it names no host")
    return FleetUrl(
        scheme,
        parts.hostname,
        port or DEFAULT_PORT,
        db=int(db_text),
        username=username,
        password=password,
    )


def _bad(source: str, why: str) -> CivitaiTuiError:
    return CivitaiTuiError(
        FailureKind.BAD_CONFIG,
        f"{source + ': ' if source else ''}not a usable fleet server ({why}); expected {FORMS}",
    )
