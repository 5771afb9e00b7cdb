"""Who may use the TCP control listener, and what it may touch.

The Unix socket (mode 0600) already limits the control API to the engine's
user. A TCP port is open to every local user (and to browsers, through DNS
rebinding or a hostile page), so requests arriving over TCP must pass:

* **the token**, ``Authorization: Bearer <token>``, compared in constant time.
  The token is read from a 0600 file (``--token-file``) or from
  ``CIVITAI_TUI_ENGINE_TOKEN``, never from the command line (``ps`` shows argv to
  everyone), and must look like at least 32 random bytes
  (``engine --new-token`` writes one);
* **the Host header**: an IP literal, ``localhost`` or the listen host, on the
  listen port, so a rebinding DNS name cannot reach the engine from a browser;
* **no Origin header**: browsers send one on every cross-site request and
  WebSocket handshake; our own clients never do;
* **path roots**: a job's ``dest`` and a report's ``output`` must lie under one of
  ``engine.allowed_roots`` (default: the user's home and ``bulk.dest``) and not in
  a hidden folder (``.ssh``, ``.config``, ...) there; ``bulk.dest`` and
  ``engine.allowed_roots`` themselves cannot be widened over TCP.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from civitai_tui.atomic import write_atomic
from civitai_tui.errors import CivitaiTuiError, FailureKind
from civitai_tui.private import read_secret_file

TOKEN_ENV = "CIVITAI_TUI_ENGINE_TOKEN"
TOKEN_BYTES = 32
#: 32 random bytes as URL-safe base64 (what ``--new-token`` writes) is 43 characters.
MIN_TOKEN_CHARS = 43
#: A token this long but made of a handful of characters is not random.
MIN_DISTINCT_CHARS = 16
TOKEN_HOWTO = (
    f"put the token in a file only you can read (chmod 600) and pass --token-file PATH, "
    f"or set {TOKEN_ENV}; `civitai-tui engine --tcp HOST:PORT --token-file PATH --new-token` "
    "writes a fresh one"
)


def _bad(message: str) -> CivitaiTuiError:
    return CivitaiTuiError(FailureKind.BAD_CONFIG, message)


def new_token() -> str:
    """A fresh token: 32 random bytes, URL-safe base64."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def write_new_token(path: Path) -> str:
    """Write a fresh token to ``path`` (mode 0600) and return it."""
    token = new_token()
    write_atomic(path, (token + "\n").encode(), mode=0o600)
    return token


def check_token(token: str, source: str) -> str:
    """``token`` if it is long and varied enough to be random, else BAD_CONFIG."""
    if len(token) < MIN_TOKEN_CHARS or len(set(token)) < MIN_DISTINCT_CHARS:
        raise _bad(
            f"the control token from {source} is too weak: it needs at least "
            f"{TOKEN_BYTES} random bytes ({MIN_TOKEN_CHARS}+ varied characters); {TOKEN_HOWTO}"
        )
    return token


def read_token_file(path: Path) -> str:
    """The token in ``path``, refused unless the file is private (no group/other access)."""
    return check_token(read_secret_file(path, "token file", TOKEN_HOWTO), str(path))


def load_token(token_file: Path | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The TCP token from ``token_file`` or the environment; None when neither is given."""
    if token_file is not None:
        return read_token_file(token_file)
    env = (os.environ if environ is None else environ).get(TOKEN_ENV, "").strip()
    return check_token(env, TOKEN_ENV) if env else None


def token_matches(sent_header: str, token: str) -> bool:
    """True when ``Authorization`` is ``Bearer <token>`` (constant time)."""
    return hmac.compare_digest(sent_header.encode(), f"Bearer {token}".encode())


@dataclass(frozen=True)
class Listen:
    """The TCP address the listener is bound to."""

    host: str
    port: int

    def host_allowed(self, header: str) -> bool:
        """True for a Host header naming this listener (an IP literal, localhost or our host)."""
        name, sep, port = header.rpartition(":")
        if not sep or not port.isdigit() or int(port) != self.port:
            return False
        name = name.strip("[]").lower()
        if name in ("localhost", self.host.lower().strip("[]")):
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True


def _real(path: Path) -> Path:
    """``path`` absolute with every symlink resolved (as far as it exists)."""
    return Path(os.path.realpath(path.expanduser()))


def default_roots(bulk_dest: str) -> list[Path]:
    """The user's home, and ``bulk.dest`` when set."""
    roots = [Path.home()]
    if bulk_dest.strip():
        roots.append(Path(bulk_dest.strip()))
    return roots


def parse_roots(text: str, bulk_dest: str) -> list[Path]:
    """``engine.allowed_roots`` (paths joined by ``os.pathsep``) or the defaults when empty."""
    listed = [Path(p) for p in text.split(os.pathsep) if p.strip()]
    return [_real(p) for p in (listed or default_roots(bulk_dest))]


def check_under_roots(path: str, roots: Iterable[Path], what: str) -> None:
    """Refuse ``path`` unless it lies under a root and not inside a hidden folder there."""
    target = _real(Path(path or "."))
    for root in roots:
        try:
            inside = target.relative_to(root)
        except ValueError:
            continue
        hidden = [part for part in inside.parts if part.startswith(".")]
        if not hidden:
            return
        raise CivitaiTuiError(
            FailureKind.FORBIDDEN,
            f"{what} {target} is inside the hidden folder {hidden[0]!r}: over TCP the engine "
            "never writes into hidden folders",
        )
    shown = ", ".join(str(r) for r in roots) or "(none)"
    raise CivitaiTuiError(
        FailureKind.FORBIDDEN,
        f"{what} {target} is outside the allowed roots ({shown}); over TCP the engine only "
        "writes under engine.allowed_roots (set it with `civitai-tui config set` locally)",
    )
